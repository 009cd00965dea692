//! End to end, with the real binary: the edge. WebSockets through wharf
//! (kept open across a deploy until the drain, then closed; clients that
//! reconnect reach the new release; no HTTP request fails meanwhile), TLS
//! with certificate files (HTTP/2 by ALPN, HSTS, the plain-HTTP redirect),
//! certificates by ACME from Debian's Pebble with the HTTP-01 challenge
//! answered by wharf's own proxy, and maintenance mode across a restart.

#![allow(clippy::unwrap_used)]

#[path = "../../wharf-tls/tests/support/pebble.rs"]
mod pebble;
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use support::{App, Load, Server, get_from, header, hello_bin, tail};
use tokio_tungstenite::tungstenite::Message;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket to the hello app's `/ws` through the proxy, and its greeting.
async fn ws(proxy: SocketAddr) -> (Ws, String) {
    let (mut ws, resp) = tokio_tungstenite::connect_async(format!("ws://{proxy}/ws"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    let greeting = ws.next().await.unwrap().unwrap().into_text().unwrap();
    (ws, greeting.to_string())
}

/// Waits (at most 10 s) until the server ends a socket.
async fn closed(ws: &mut Ws) -> bool {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) => return,
                Some(Ok(m)) if m.is_close() => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[test]
fn websockets_through_a_deploy_under_load_close_at_the_drain_and_reconnect_to_the_new_release() {
    let rt = rt();
    let server = Server::start();
    let app = App::builder("socks").instances(2).build();
    assert_eq!(server.deploy(&app, &[]), 1);
    let load = Load::start(server.proxy, 2, 1);

    let mut sockets = Vec::new();
    rt.block_on(async {
        for _ in 0..3 {
            let (socket, greeting) = ws(server.proxy).await;
            assert!(greeting.starts_with("hello release=1 "), "{greeting}");
            sockets.push(socket);
        }
        let s = &mut sockets[0];
        s.send(Message::text("ahoy")).await.unwrap();
        assert_eq!(s.next().await.unwrap().unwrap(), Message::text("ahoy"));
        s.send(Message::binary(vec![0u8, 1, 254, 255]))
            .await
            .unwrap();
        assert_eq!(
            s.next().await.unwrap().unwrap(),
            Message::binary(vec![0u8, 1, 254, 255])
        );
        let big: Vec<u8> = (0..1 << 20).map(|i| (i % 253) as u8).collect();
        s.send(Message::binary(big.clone())).await.unwrap();
        assert_eq!(s.next().await.unwrap().unwrap(), Message::binary(big));
    });

    // The deploy waits for the open sockets up to its drain timeout (5 s),
    // then closes them.
    assert_eq!(server.deploy(&app, &["--env", "HELLO_MESSAGE=two"]), 2);
    rt.block_on(async {
        for s in &mut sockets {
            assert!(closed(s).await, "a socket of release 1 outlived its drain");
        }
        let (mut again, greeting) = ws(server.proxy).await;
        assert!(greeting.starts_with("hello release=2 "), "{greeting}");
        again.send(Message::text("after")).await.unwrap();
        assert_eq!(again.next().await.unwrap().unwrap(), Message::text("after"));
    });
    let report = load.finish();
    assert_eq!(report.failed, 0, "failed requests: {:#?}", report.failures);
    assert!(report.ok > 50, "too little load: {}", report.ok);
    // One access-log line per tunnel at its end, with the bytes both ways.
    let log = server.log_text();
    assert!(
        log.lines().any(|l| l.contains("\"status\":101")
            && l.contains("\"bytes_in\"")
            && l.contains("\"end\":\"drained\"")),
        "{}",
        tail(&log, 20)
    );
}

/// `host`'s self-signed certificate and key, written into `dir`.
fn self_signed(dir: &std::path::Path, host: &str) -> CertificateDer<'static> {
    let made = rcgen::generate_simple_self_signed(vec![host.to_owned()]).unwrap();
    std::fs::write(dir.join("site.pem"), made.cert.pem()).unwrap();
    std::fs::write(dir.join("site.key"), made.signing_key.serialize_pem()).unwrap();
    made.cert.der().clone()
}

/// An app served on `host` over TLS (`tls` is its TOML value).
fn tls_app(name: &str, host: &str, tls: &str) -> App {
    let app = App::builder(name).instances(1).build();
    app.write_config(&format!(
        r#"name = "{name}"

[processes.web]
command = "{bin}"
instances = 1
http = {{ host = "{host}", tls = {tls}, hsts = true }}
health = {{ path = "/up", interval = "200ms", timeout = "1s", threshold = 1 }}
stop_timeout = "5s"

[deploy]
health_timeout = "15s"
drain_timeout = "2s"
"#,
        bin = hello_bin().display(),
    ));
    app
}

/// An HTTPS GET through `addr` with SNI `host` and HTTP/2 by ALPN,
/// verified against `root`: (status, release header, HSTS header, version).
async fn https_get(
    addr: SocketAddr,
    host: &str,
    root: CertificateDer<'static>,
) -> Result<(u16, Option<String>, Option<String>, http::Version), String> {
    use http_body_util::Empty;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root).map_err(|e| e.to_string())?;
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(host.to_owned()).unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (mut tx, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = hyper::Request::get(format!("https://{host}/"))
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = tx.send_request(req).await.map_err(|e| e.to_string())?;
    let h = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    Ok((
        resp.status().as_u16(),
        h("x-hello-release"),
        h("strict-transport-security"),
        resp.version(),
    ))
}

/// A TLS handshake with `addr` for `host`, verified against `root` only.
async fn tls_handshake(
    addr: SocketAddr,
    host: &str,
    root: CertificateDer<'static>,
) -> Result<(), String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root).map_err(|e| e.to_string())?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(host.to_owned()).unwrap(), tcp)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

#[test]
fn tls_from_certificate_files_with_h2_hsts_and_the_https_redirect() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_args(
        &tmp.path().join("data"),
        &[],
        &["--https-listen", "127.0.0.1:0"],
    );
    let https = server.https.expect("an HTTPS listener");
    let app = tls_app(
        "files",
        "files.test",
        r#"{ cert = "site.pem", key = "site.key" }"#,
    );
    let root = self_signed(app.path(), "files.test");
    let out = server.wharf(&["deploy", app.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("files.test: certificate from ") && stderr.contains("installed"),
        "{stderr}"
    );

    let (status, release, hsts, version) = rt
        .block_on(https_get(https, "files.test", root.clone()))
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(release.as_deref(), Some("1"));
    assert_eq!(hsts.as_deref(), Some("max-age=31536000"));
    assert_eq!(version, http::Version::HTTP_2);
    // A name without a certificate fails its handshake; the server goes on.
    assert!(
        rt.block_on(https_get(https, "other.test", root.clone()))
            .is_err()
    );
    assert_eq!(
        rt.block_on(https_get(https, "files.test", root)).unwrap().0,
        200
    );

    // Plain HTTP of the host goes to HTTPS.
    let (status, head, _) = get_from(server.proxy, "files.test", "/cart?x=1", &[]);
    assert_eq!(status, 308, "{head}");
    assert_eq!(
        header(&head, "location"),
        Some(format!("https://files.test:{}/cart?x=1", https.port()))
    );

    let certs: serde_json::Value = serde_json::from_str(&server.ok(&["certs", "--json"])).unwrap();
    assert_eq!(certs[0]["host"], "files.test", "{certs:#}");
    assert_eq!(certs[0]["source"], "files", "{certs:#}");
    assert!(certs[0]["not_after"].as_i64().is_some(), "{certs:#}");
    // The key lives in the data dir, owner only.
    use std::os::unix::fs::PermissionsExt;
    let key = server.data.join("tls/certs/files.test/key.pem");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", key.display());
    // A broken key file fails the next deploy; release 1 keeps serving.
    std::fs::write(app.path().join("site.key"), "not a key").unwrap();
    let out = server.wharf(&["deploy", app.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the certificate of files.test cannot be used"),
        "{stderr}"
    );
    assert!(stderr.contains("release 1 keeps serving"), "{stderr}");
    assert_eq!(
        support::get_full(server.proxy, "/").0,
        404,
        "no route without a Host"
    );
    let (status, _, _) = get_from(server.proxy, "files.test", "/", &[]);
    assert_eq!(status, 308, "release 1 still routes files.test");
}

/// The whole ACME flow with a real ACME server: the deploy orders the
/// certificate and goes live on plain HTTP without waiting; Pebble checks
/// the HTTP-01 challenge by asking wharf's proxy (its plain listener is on
/// the port Pebble validates on, every name resolving to 127.0.0.1 through
/// `pebble-challtestsrv`); then HTTPS with SNI verifies against Pebble's
/// root, on the proxy and on the https API dialled by that name. Nothing
/// is faked: `PEBBLE_VA_ALWAYS_VALID` is not used.
#[test]
fn acme_certificate_from_pebble_over_http01_answered_by_the_proxy_and_the_api() {
    let rt = rt();
    let port = pebble::free_port();
    let pebble = rt.block_on(pebble::Pebble::start(port)).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{port}");
    let ca = pebble.ca_pem();
    let directory = pebble.directory_url();
    let server = Server::start_args(
        &tmp.path().join("data"),
        &[],
        &[
            "--listen",
            &listen,
            "--https-listen",
            "127.0.0.1:0",
            "--acme-directory",
            &directory,
            "--acme-ca-root",
            ca.to_str().unwrap(),
            "--acme-email",
            "ops@wharf.test",
            "--api",
            "127.0.0.1:0",
        ],
    );
    let https = server.https.unwrap();
    let app = tls_app("shop", "shop.wharf.test", "true");
    let out = server.wharf(&["deploy", app.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("shop.wharf.test: ordering a certificate by ACME"),
        "{stderr}"
    );

    assert_eventually!(
        {
            let certs: serde_json::Value =
                serde_json::from_str(&server.ok(&["certs", "--json"])).unwrap();
            certs[0]["not_after"].as_i64().is_some()
        },
        Duration::from_secs(90),
        "no certificate from Pebble: {}\n{}\n{}",
        server.ok(&["certs"]),
        tail(&server.log_text(), 30),
        pebble.logs()
    );
    let certs: serde_json::Value = serde_json::from_str(&server.ok(&["certs", "--json"])).unwrap();
    assert_eq!(certs[0]["source"], "acme", "{certs:#}");
    assert!(certs[0]["last_error"].is_null(), "{certs:#}");
    let root_pem = rt.block_on(pebble.issuing_root_pem()).unwrap();
    let root = CertificateDer::from_pem_slice(root_pem.as_bytes()).unwrap();
    let (status, release, _, version) = rt
        .block_on(https_get(https, "shop.wharf.test", root.clone()))
        .unwrap();
    assert_eq!((status, release.as_deref()), (200, Some("1")));
    assert_eq!(version, http::Version::HTTP_2);
    // The https API, dialled by that name, serves the same certificate,
    // which a client verifies against the CA: nothing to pin.
    let api = server.api.unwrap();
    rt.block_on(tls_handshake(api, "shop.wharf.test", root.clone()))
        .unwrap();
    let refused = rt
        .block_on(tls_handshake(api, "wharf-api", root))
        .unwrap_err();
    assert!(refused.contains("certificate"), "{refused}");
    // The account key is in the data dir, owner only.
    use std::os::unix::fs::PermissionsExt;
    let accounts: Vec<_> = std::fs::read_dir(server.data.join("tls/acme"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(accounts.len(), 1);
    let mode = accounts[0].metadata().unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn maintenance_answers_503_with_the_message_and_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut server = Server::start_on(&data, &[]);
    let app = App::builder("fixing").instances(1).build();
    assert_eq!(server.deploy(&app, &[]), 1);
    server.ok(&["maintenance", "on", "--message", "Back at 3pm <UTC>"]);
    let check_down = |server: &Server| {
        let (status, head, body) = support::get_full(server.proxy, "/");
        assert_eq!(status, 503, "{head}");
        assert_eq!(header(&head, "retry-after").as_deref(), Some("60"));
        assert!(body.contains("Back at 3pm &lt;UTC&gt;"), "{body}");
        let status = server.status();
        assert_eq!(status["apps"][0]["maintenance"], "Back at 3pm <UTC>");
        // The instances keep running.
        assert_eq!(status["apps"][0]["release"], 1, "{status:#}");
    };
    check_down(&server);
    assert_eq!(support::owned_instances(&server.data).len(), 1);
    let text = server.ok(&["status"]);
    assert!(
        text.contains("in maintenance (503: Back at 3pm <UTC>)"),
        "{text}"
    );

    server.stop();
    let server = Server::start_on(&data, &[]);
    check_down(&server);
    server.ok(&["maintenance", "off"]);
    assert_eq!(support::get(server.proxy, "/"), (200, Some(1)));
    assert!(server.status()["apps"][0]["maintenance"].is_null());
}
