//! End to end against a real Pebble on loopback: certificates ordered over
//! HTTP-01 (validated for real against a tiny responder serving
//! [`Challenges`]), served by SNI through a real TLS handshake verified
//! against Pebble's root, renewed on an injected clock, and a failing
//! order that is recorded, backed off and retried by the loop.
//!
//! Needs Debian's `pebble` package; without it these tests fail.

#[path = "support/pebble.rs"]
mod pebble;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pebble::{Pebble, free_port};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use wharf_tls::{
    AcmeSettings, AcmeStatus, CertInfo, CertSource, CertStore, Challenges, Clock, Manager,
    ManualClock, Resolver,
};

const HOST: &str = "shop.wharf.test";
const WAIT: Duration = Duration::from_secs(90);

/// Answers `GET /.well-known/acme-challenge/<token>` from [`Challenges`]
/// on 127.0.0.1:`port`, as the proxy's plain listener will; counts the
/// answers it gave.
struct Responder {
    task: JoinHandle<()>,
    answered: Arc<AtomicUsize>,
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_challenges(port: u16, challenges: Arc<Challenges>) -> Responder {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind the HTTP-01 port");
    let answered = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&answered);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(answer(
                stream,
                Arc::clone(&challenges),
                Arc::clone(&counter),
            ));
        }
    });
    Responder { task, answered }
}

async fn answer(mut stream: TcpStream, challenges: Arc<Challenges>, answered: Arc<AtomicUsize>) {
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
        if head.len() > 16 * 1024 {
            return;
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or_default();
    let body = path
        .strip_prefix("/.well-known/acme-challenge/")
        .and_then(|token| challenges.answer(token));
    let response = match body {
        Some(body) => {
            answered.fetch_add(1, Ordering::SeqCst);
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
        }
        None => {
            "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
        }
    };
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// A TLS server on 127.0.0.1 choosing its certificate with `resolver`.
async fn tls_server(resolver: Arc<Resolver>) -> (SocketAddr, JoinHandle<()>) {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_cert_resolver(resolver);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(stream).await {
                    let _ = tls.write_all(b"hello").await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    (addr, task)
}

/// Connects with SNI `name`, verifying the chain against `root_pem`;
/// returns the leaf the server presented.
async fn handshake(
    addr: SocketAddr,
    name: &str,
    root_pem: &str,
) -> Result<CertificateDer<'static>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(root_pem.as_bytes()).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let server_name = ServerName::try_from(name.to_owned()).map_err(|e| e.to_string())?;
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let mut hello = [0u8; 5];
    tls.read_exact(&mut hello)
        .await
        .map_err(|e| e.to_string())?;
    if &hello != b"hello" {
        return Err(format!("unexpected greeting {hello:?}"));
    }
    let (_, connection) = tls.get_ref();
    connection
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|leaf| leaf.clone().into_owned())
        .ok_or_else(|| "no peer certificate".to_owned())
}

fn settings(pebble: &Pebble) -> AcmeSettings {
    AcmeSettings {
        contact_email: Some("ops@wharf.test".to_owned()),
        extra_roots: vec![pebble.ca_pem()],
        ..AcmeSettings::new(pebble.directory_url())
    }
}

fn cert(manager: &Manager, host: &str) -> Option<CertInfo> {
    manager
        .certs()
        .expect("certs")
        .into_iter()
        .find(|c| c.host == host)
}

/// Waits until `done`, failing with what the manager and Pebble know.
async fn wait_until(
    pebble: &Pebble,
    manager: &Manager,
    what: &str,
    mut done: impl FnMut() -> bool,
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done() {
        if tokio::time::Instant::now() > deadline {
            panic!(
                "timed out after {}s waiting for {what}; certificates: {:#?}\n{}",
                WAIT.as_secs(),
                manager.certs(),
                pebble.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn serial_of(leaf: &CertificateDer<'_>) -> String {
    use x509_parser::prelude::FromDer;
    let (_, cert) =
        x509_parser::certificate::X509Certificate::from_der(leaf.as_ref()).expect("X.509");
    cert.raw_serial()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

fn account_files(store: &CertStore) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(store.dir().join("acme"))
        .expect("acme dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_over_http01_and_serves_the_certificate_by_sni() {
    let http_port = free_port();
    let pebble = Pebble::start(http_port).await.expect("Pebble starts");
    let tmp = tempfile::tempdir().expect("temp dir");
    let store = CertStore::open(tmp.path().join("tls")).expect("store");
    let manager = Manager::new(store.clone(), Some(settings(&pebble))).expect("manager");
    let responder = serve_challenges(http_port, manager.challenges()).await;

    assert_eq!(manager.want_acme(HOST).ok(), Some(AcmeStatus::Ordering));
    assert!(manager.is_ordering(HOST));
    // A second call does not start a second order.
    assert_eq!(manager.want_acme(HOST).ok(), Some(AcmeStatus::Ordering));
    wait_until(&pebble, &manager, "the certificate", || {
        manager.want_acme(HOST).ok() == Some(AcmeStatus::Ready)
    })
    .await;

    let info = cert(&manager, HOST).expect("listed");
    assert_eq!(info.source, CertSource::Acme);
    assert_eq!(info.last_error, None);
    assert_eq!(info.names, [HOST]);
    let issuer = info.issuer.clone().unwrap_or_default();
    assert!(issuer.starts_with("Pebble Intermediate CA"), "{issuer}");
    assert!(
        responder.answered.load(Ordering::SeqCst) >= 1,
        "Pebble never fetched the HTTP-01 answer"
    );
    assert!(manager.challenges().is_empty());
    assert!(!manager.is_ordering(HOST));

    let host_dir = store.host_dir(HOST).expect("host dir");
    assert_eq!(mode(&host_dir.join("key.pem")), 0o600);
    let accounts = account_files(&store);
    assert_eq!(accounts, [store.account_path(&pebble.directory_url())]);
    assert_eq!(mode(&accounts[0]), 0o600);
    let meta = std::fs::read_to_string(host_dir.join("meta.json")).expect("meta");
    assert!(!meta.contains("PRIVATE KEY"), "{meta}");

    let root = pebble.issuing_root_pem().await.expect("Pebble's root");
    let (addr, server) = tls_server(manager.resolver()).await;
    let leaf = handshake(addr, HOST, &root)
        .await
        .expect("a verified handshake for shop.wharf.test");
    assert_eq!(Some(serial_of(&leaf)), info.serial);
    let unknown = handshake(addr, "other.wharf.test", &root).await;
    assert!(unknown.is_err(), "{unknown:?}");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_pass_replaces_a_due_certificate() {
    let http_port = free_port();
    let pebble = Pebble::start(http_port).await.expect("Pebble starts");
    let tmp = tempfile::tempdir().expect("temp dir");
    let store = CertStore::open(tmp.path().join("tls")).expect("store");
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    let settings = settings(&pebble);
    let renew_before = settings.renew_before;
    let manager = Manager::with_clock(
        store.clone(),
        Some(settings),
        Arc::clone(&clock) as Arc<dyn Clock>,
    )
    .expect("manager");
    let _responder = serve_challenges(http_port, manager.challenges()).await;

    manager.want_acme(HOST).expect("want_acme");
    wait_until(&pebble, &manager, "the first certificate", || {
        manager.want_acme(HOST).ok() == Some(AcmeStatus::Ready)
    })
    .await;
    let first = cert(&manager, HOST).expect("listed");
    let account = std::fs::read(store.account_path(&pebble.directory_url())).expect("account");

    // Nothing is due yet.
    assert_eq!(manager.check(), Vec::<String>::new());

    // One second past `not_after - renew_before`.
    let not_after = first.not_after.expect("not_after");
    let due = u64::try_from(not_after).expect("after 1970") - renew_before.as_secs() + 1;
    clock.set(UNIX_EPOCH + Duration::from_secs(due));
    assert_eq!(manager.check(), vec![HOST.to_owned()]);
    wait_until(&pebble, &manager, "the renewed certificate", || {
        !manager.is_ordering(HOST) && cert(&manager, HOST).and_then(|c| c.serial) != first.serial
    })
    .await;
    let second = cert(&manager, HOST).expect("listed");
    assert_eq!(second.last_error, None, "{second:?}");
    assert_ne!(second.serial, first.serial);
    // Pebble issues for a fixed period from the real now, so on the clock
    // as set the new certificate would be due again; back on time it is not.
    clock.set(SystemTime::now());
    assert_eq!(manager.want_acme(HOST).ok(), Some(AcmeStatus::Ready));
    assert!(!manager.is_ordering(HOST));

    let root = pebble.issuing_root_pem().await.expect("Pebble's root");
    let (addr, server) = tls_server(manager.resolver()).await;
    let leaf = handshake(addr, HOST, &root).await.expect("handshake");
    assert_eq!(Some(serial_of(&leaf)), second.serial);
    server.abort();

    // The account was reused, not created again.
    assert_eq!(account_files(&store).len(), 1);
    assert_eq!(
        std::fs::read(store.account_path(&pebble.directory_url())).ok(),
        Some(account)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_that_cannot_validate_is_recorded_backed_off_and_retried_by_the_loop() {
    let host = "broken.wharf.test";
    let http_port = free_port();
    let pebble = Pebble::start(http_port).await.expect("Pebble starts");
    let tmp = tempfile::tempdir().expect("temp dir");
    let store = CertStore::open(tmp.path().join("tls")).expect("store");
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    let settings = AcmeSettings {
        check_every: Duration::from_millis(200),
        ..settings(&pebble)
    };
    let manager = Manager::with_clock(store, Some(settings), Arc::clone(&clock) as Arc<dyn Clock>)
        .expect("manager");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(Arc::clone(&manager).run(async {
        let _ = stopped.await;
    }));
    let now = || {
        i64::try_from(
            clock
                .now()
                .duration_since(UNIX_EPOCH)
                .expect("after 1970")
                .as_secs(),
        )
        .expect("fits")
    };
    let failures = |manager: &Manager| {
        manager
            .store()
            .meta(host)
            .ok()
            .flatten()
            .map_or(0, |m| m.failures)
    };

    // Nothing answers on the HTTP-01 port: the validation fails.
    assert_eq!(manager.want_acme(host).ok(), Some(AcmeStatus::Ordering));
    wait_until(&pebble, &manager, "the failed order", || {
        !manager.is_ordering(host) && failures(&manager) == 1
    })
    .await;
    let info = cert(&manager, host).expect("listed");
    let error = info.last_error.clone().unwrap_or_default();
    assert!(
        error.contains(&format!("could not validate {host}: ")),
        "{error}"
    );
    assert!(
        error.ends_with(
            "check that broken.wharf.test resolves to this server and that port 80 reaches wharf"
        ),
        "{error}"
    );
    assert_eq!(info.not_after, None);
    assert_eq!(info.next_attempt, Some(now() + 60));
    assert!(manager.challenges().is_empty());

    // The loop keeps running and respects the backoff.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!run.is_finished());
    assert_eq!(failures(&manager), 1);

    // Once the backoff has passed, the loop orders again by itself.
    clock.advance(Duration::from_secs(60));
    wait_until(&pebble, &manager, "the second failed order", || {
        !manager.is_ordering(host) && failures(&manager) == 2
    })
    .await;
    assert_eq!(
        cert(&manager, host).and_then(|c| c.next_attempt),
        Some(now() + 120)
    );
    assert!(!run.is_finished());

    // With the answers served, the next retry succeeds.
    let _responder = serve_challenges(http_port, manager.challenges()).await;
    clock.advance(Duration::from_secs(120));
    wait_until(
        &pebble,
        &manager,
        "the certificate after the retries",
        || manager.resolver().has(host),
    )
    .await;
    let info = cert(&manager, host).expect("listed");
    assert_eq!(info.last_error, None);
    assert_eq!(info.next_attempt, None);
    assert_eq!(failures(&manager), 0);
    assert_eq!(manager.want_acme(host).ok(), Some(AcmeStatus::Ready));

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("the loop stops on shutdown")
        .expect("the loop did not panic");
}
