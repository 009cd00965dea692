//! Pebble, Let's Encrypt's ACME test server, on loopback for tests.
//!
//! Self-contained so other crates' tests can include it with
//! `#[path = "…/wharf-tls/tests/support/pebble.rs"] mod pebble;`. It needs
//! these (dev-)dependencies: `rcgen`, `rustls` (ring), `tokio`,
//! `tokio-rustls`, `tempfile`.
//!
//! [`Pebble::start`] runs two processes from Debian's `pebble` package
//! (2.4.0; `/usr/bin/pebble`, `/usr/bin/pebble-challtestsrv`; override with
//! the `PEBBLE` and `PEBBLE_CHALLTESTSRV` environment variables):
//!
//! - `pebble-challtestsrv` as the DNS server Pebble asks: every A query is
//!   answered with 127.0.0.1, AAAA queries get nothing; its HTTP-01,
//!   HTTPS-01 and TLS-ALPN-01 servers are off, its management API is on a
//!   free port;
//! - `pebble -config <json> -dnsserver 127.0.0.1:<dns>` with
//!   `PEBBLE_VA_NOSLEEP=1` (validates at once), `PEBBLE_WFE_NONCEREJECT=0`
//!   (no deliberate bad-nonce errors) and `PEBBLE_AUTHZREUSE=0` (every order
//!   is validated for real), its ACME and management APIs on free loopback
//!   ports, its HTTPS certificate made here with rcgen (a test CA and a leaf
//!   for 127.0.0.1 and localhost). It validates HTTP-01 by connecting to
//!   `127.0.0.1:<http_port>`, the port the caller chose and serves answers
//!   on (nothing of Pebble listens there).
//!
//! A missing binary is an error naming the package to install: tests fail,
//! they never skip. Both processes are killed when the [`Pebble`] drops.

#![allow(dead_code)]

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long Pebble may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running Pebble and its DNS server; both die with this value.
pub struct Pebble {
    dir: tempfile::TempDir,
    pebble: Child,
    challtestsrv: Child,
    acme: SocketAddr,
    management: SocketAddr,
    http_port: u16,
}

impl Pebble {
    /// Starts Pebble validating HTTP-01 on `127.0.0.1:http_port`.
    /// Tries three times with fresh ports should one be taken meanwhile.
    pub async fn start(http_port: u16) -> Result<Self, String> {
        // One start at a time: between releasing the ports it picked and
        // Pebble binding them, a start in a parallel test could pick the
        // same ones, and one Pebble would then answer for the other.
        static STARTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let _one_at_a_time = STARTING.lock().await;
        let mut last = String::new();
        for _ in 0..3 {
            match Self::start_once(http_port).await {
                Ok(pebble) => return Ok(pebble),
                Err(StartError::Fatal(message)) => return Err(message),
                Err(StartError::Retry(message)) => last = message,
            }
        }
        Err(last)
    }

    /// The ACME directory URL, `https://127.0.0.1:<port>/dir`.
    pub fn directory_url(&self) -> String {
        format!("https://{}/dir", self.acme)
    }

    /// The PEM file of the CA that signed Pebble's HTTPS certificate: what
    /// an ACME client must trust to talk to this Pebble.
    pub fn ca_pem(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The port Pebble connects to for HTTP-01 validations.
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// The management API, `https://127.0.0.1:<port>`.
    pub fn management_url(&self) -> String {
        format!("https://{}", self.management)
    }

    /// The root that Pebble's issued chains lead to (random per run),
    /// fetched as PEM from `GET <management>/roots/0`.
    pub async fn issuing_root_pem(&self) -> Result<String, String> {
        self.management_get("/roots/0").await
    }

    /// GETs `path` from the management API and returns the body of a 200.
    pub async fn management_get(&self, path: &str) -> Result<String, String> {
        let failed =
            |detail: String| format!("GET {}{path} failed: {detail}", self.management_url());
        let mut roots = rustls::RootCertStore::empty();
        let ca = CertificateDer::from_pem_file(self.ca_pem()).map_err(|e| failed(e.to_string()))?;
        roots.add(ca).map_err(|e| failed(e.to_string()))?;
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| failed(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(self.management)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::IpAddress(Ipv4Addr::LOCALHOST.into()), tcp)
            .await
            .map_err(|e| failed(e.to_string()))?;
        // HTTP/1.0: the server closes after the answer, never chunks it.
        let request = format!("GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.management);
        tls.write_all(request.as_bytes())
            .await
            .map_err(|e| failed(e.to_string()))?;
        let mut answer = Vec::new();
        // A server closing without close_notify is fine once the answer is in.
        if let Err(err) = tls.read_to_end(&mut answer).await
            && (answer.is_empty() || err.kind() != std::io::ErrorKind::UnexpectedEof)
        {
            return Err(failed(err.to_string()));
        }
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let Some((head, body)) = answer.split_once("\r\n\r\n") else {
            return Err(failed(format!("no HTTP answer: {answer:?}")));
        };
        let status = head.lines().next().unwrap_or_default();
        if status.split_whitespace().nth(1) != Some("200") {
            return Err(failed(format!("the answer was `{status}`")));
        }
        Ok(body.to_owned())
    }

    /// What both processes printed, for a failing test's message.
    pub fn logs(&self) -> String {
        logs(self.dir.path())
    }

    async fn start_once(http_port: u16) -> Result<Self, StartError> {
        let dir = tempfile::tempdir().map_err(|e| fatal(format!("no temp dir: {e}")))?;
        write_certificates(dir.path()).map_err(fatal)?;

        // Hold every port until both processes are about to start, so no two
        // of them are the same; the DNS port must be free for UDP and TCP.
        let (dns, dns_holds) = free_dns_port().map_err(fatal)?;
        let (acme, acme_hold) = hold_port().map_err(fatal)?;
        let (management, management_hold) = hold_port().map_err(fatal)?;
        let (challtestsrv_management, challtestsrv_hold) = hold_port().map_err(fatal)?;
        // TLS-ALPN-01 is never used here, but Pebble wants a port for it.
        let (tls_alpn, tls_alpn_hold) = hold_port().map_err(fatal)?;

        let config = format!(
            r#"{{"pebble":{{"listenAddress":"{acme}","managementListenAddress":"{management}","certificate":"{}","privateKey":"{}","httpPort":{http_port},"tlsPort":{},"ocspResponderURL":"","externalAccountBindingRequired":false}}}}"#,
            dir.path().join("pebble.pem").display(),
            dir.path().join("pebble.key").display(),
            tls_alpn.port(),
        );
        let config_path = dir.path().join("pebble-config.json");
        std::fs::write(&config_path, config)
            .map_err(|e| fatal(format!("writing the config: {e}")))?;

        drop((
            dns_holds,
            acme_hold,
            management_hold,
            challtestsrv_hold,
            tls_alpn_hold,
        ));
        let challtestsrv = spawn(
            dir.path(),
            "PEBBLE_CHALLTESTSRV",
            "pebble-challtestsrv",
            Command::new(binary("PEBBLE_CHALLTESTSRV", "pebble-challtestsrv"))
                .arg("-dns01")
                .arg(dns.to_string())
                .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
                .arg("-management")
                .arg(challtestsrv_management.to_string())
                .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""]),
        )?;
        let challtestsrv = Killed(Some(challtestsrv));
        let pebble = spawn(
            dir.path(),
            "PEBBLE",
            "pebble",
            Command::new(binary("PEBBLE", "pebble"))
                .arg("-config")
                .arg(&config_path)
                .arg("-dnsserver")
                .arg(dns.to_string())
                .env("PEBBLE_VA_NOSLEEP", "1")
                .env("PEBBLE_WFE_NONCEREJECT", "0")
                .env("PEBBLE_AUTHZREUSE", "0"),
        )?;
        let mut pebble = Killed(Some(pebble));
        let mut challtestsrv = challtestsrv;

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            for (name, child) in [
                ("pebble", &mut pebble),
                ("pebble-challtestsrv", &mut challtestsrv),
            ] {
                if let Some(status) = child.0.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                    return Err(StartError::Retry(format!(
                        "{name} exited at start ({status}); its output:\n{}",
                        logs(dir.path())
                    )));
                }
            }
            let mut up = true;
            for addr in [acme, management, challtestsrv_management] {
                up &= tokio::net::TcpStream::connect(addr).await.is_ok();
            }
            if up {
                break;
            }
            if Instant::now() > deadline {
                return Err(fatal(format!(
                    "Pebble did not listen on {acme} within {}s; its output:\n{}",
                    START_TIMEOUT.as_secs(),
                    logs(dir.path())
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (Some(pebble), Some(challtestsrv)) = (pebble.0.take(), challtestsrv.0.take()) else {
            return Err(fatal("lost a child process".to_owned()));
        };
        Ok(Self {
            dir,
            pebble,
            challtestsrv,
            acme,
            management,
            http_port,
        })
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in [&mut self.pebble, &mut self.challtestsrv] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A free TCP port on 127.0.0.1 (for the HTTP-01 port, say).
pub fn free_port() -> u16 {
    hold_port()
        .map(|(addr, _)| addr.port())
        .expect("a free port on 127.0.0.1")
}

enum StartError {
    /// A port race or a crash at start: worth another try.
    Retry(String),
    /// Missing binaries, no temp dir: no use trying again.
    Fatal(String),
}

fn fatal(message: String) -> StartError {
    StartError::Fatal(message)
}

/// Kills a child that did not make it into a [`Pebble`].
struct Killed(Option<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn binary(variable: &str, name: &str) -> PathBuf {
    std::env::var_os(variable)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(name))
}

fn spawn(
    dir: &Path,
    variable: &str,
    name: &str,
    command: &mut Command,
) -> Result<Child, StartError> {
    let log = |suffix: &str| {
        File::create(dir.join(format!("{name}.{suffix}")))
            .map_err(|e| fatal(format!("creating {name}'s log: {e}")))
    };
    command
        .stdin(Stdio::null())
        .stdout(log("out")?)
        .stderr(log("err")?)
        .spawn()
        .map_err(|err| {
            fatal(format!(
                "could not start `{}`: {err}; install Debian's `pebble` package (`apt-get install pebble`, it ships /usr/bin/pebble and /usr/bin/pebble-challtestsrv) or set {variable} to the binary",
                command.get_program().to_string_lossy()
            ))
        })
}

fn logs(dir: &Path) -> String {
    let mut text = String::new();
    for name in ["pebble", "pebble-challtestsrv"] {
        for suffix in ["out", "err"] {
            let content =
                std::fs::read_to_string(dir.join(format!("{name}.{suffix}"))).unwrap_or_default();
            if !content.trim().is_empty() {
                text.push_str(&format!("--- {name} ({suffix})\n{content}"));
            }
        }
    }
    text
}

fn hold_port() -> Result<(SocketAddr, TcpListener), String> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("no free port: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("no free port: {e}"))?;
    Ok((addr, listener))
}

fn free_dns_port() -> Result<(SocketAddr, (UdpSocket, TcpListener)), String> {
    for _ in 0..50 {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| format!("no free UDP port: {e}"))?;
        let addr = udp
            .local_addr()
            .map_err(|e| format!("no free UDP port: {e}"))?;
        if let Ok(tcp) = TcpListener::bind(addr) {
            return Ok((addr, (udp, tcp)));
        }
    }
    Err("no port on 127.0.0.1 free for both UDP and TCP".to_owned())
}

/// Writes `ca.pem` (a test CA) and `pebble.pem`/`pebble.key` (a leaf it
/// signed for 127.0.0.1 and localhost) into `dir`.
fn write_certificates(dir: &Path) -> Result<(), String> {
    let failed = |e: rcgen::Error| format!("making Pebble's test certificates failed: {e}");
    let ca_key = KeyPair::generate().map_err(failed)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "wharf test CA for Pebble");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).map_err(failed)?;
    let issuer = Issuer::new(ca, ca_key);

    let leaf_key = KeyPair::generate().map_err(failed)?;
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .map_err(failed)?;
    leaf.distinguished_name.push(DnType::CommonName, "pebble");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(failed)?;

    for (name, content) in [
        ("ca.pem", ca_cert.pem()),
        ("pebble.pem", leaf_cert.pem()),
        ("pebble.key", leaf_key.serialize_pem()),
    ] {
        std::fs::write(dir.join(name), content).map_err(|e| format!("writing {name}: {e}"))?;
    }
    Ok(())
}
