//! A forge as wharf's webhook endpoint sees it: GitHub-shaped deliveries
//! posted over TLS to the https API (no bearer token), signed as GitHub
//! signs them (`X-Hub-Signature-256`, HMAC-SHA256 of the raw body).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use sha2::{Digest, Sha256};
use wharf_tls::pin::{PinnedVerifier, Trust};

use super::Server;

/// The https API, as a forge reaches it.
pub struct Api {
    pub addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
}

/// An answer: status, JSON body, and how long it took.
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
    pub took: Duration,
}

impl Api {
    /// Trusting exactly the certificate the server reported (as a forge
    /// with "SSL verification" off would trust any).
    pub fn new(server: &Server) -> Api {
        let trust = Trust::Pinned(server.api_fingerprint.clone().unwrap());
        let verifier = PinnedVerifier::with_roots(trust, rustls::RootCertStore::empty());
        Api {
            addr: server.api.unwrap(),
            tls: verifier.client_config(),
        }
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Answer {
        let started = Instant::now();
        let tcp = TcpStream::connect(self.addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let name = ServerName::try_from(self.addr.ip().to_string()).unwrap();
        let conn = rustls::ClientConnection::new(self.tls.clone(), name).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: GitHub-Hookshot/test\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.addr,
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        tls.write_all(head.as_bytes()).unwrap();
        tls.write_all(body).unwrap();
        tls.flush().unwrap();
        let mut raw = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match tls.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                // The server may close without close_notify after `Connection: close`.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => panic!("reading the answer: {e}"),
            }
        }
        let took = started.elapsed();
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {text:?}"));
        let body = serde_json::from_str(body).unwrap_or(serde_json::Value::String(body.into()));
        Answer { status, body, took }
    }

    /// A GitHub delivery of `event` with id `id`, signed with `secret`.
    pub fn github(&self, event: &str, id: &str, body: &[u8], secret: &str) -> Answer {
        let signature = format!("sha256={}", hex(&hmac_sha256(secret.as_bytes(), body)));
        self.request(
            "POST",
            "/hooks/shop",
            &[
                ("X-GitHub-Event", event),
                ("X-GitHub-Delivery", id),
                ("X-GitHub-Hook-ID", "4242"),
                ("X-Hub-Signature-256", &signature),
            ],
            body,
        )
    }
}

impl Api {
    /// A Gitea delivery of `event` with id `id`, signed with `secret`
    /// (`X-Gitea-Signature`: hex HMAC-SHA256 of the body), to `app`'s hook.
    pub fn gitea(&self, app: &str, event: &str, id: &str, body: &[u8], secret: &str) -> Answer {
        let signature = hex(&hmac_sha256(secret.as_bytes(), body));
        self.request(
            "POST",
            &format!("/hooks/{app}"),
            &[
                ("X-Gitea-Event", event),
                ("X-Gitea-Delivery", id),
                ("X-Gitea-Signature", &signature),
            ],
            body,
        )
    }
}

/// HMAC-SHA256 (RFC 2104), as GitHub computes `X-Hub-Signature-256`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A GitHub push event's payload (the fields wharf reads, in GitHub's
/// documented shape).
pub fn push_body(branch: &str, commit: &str, note: &str) -> Vec<u8> {
    push_body_from(
        "https://example.invalid/acme/shop.git",
        branch,
        commit,
        note,
    )
}

/// [`push_body`] of the repository cloned from `clone_url`.
pub fn push_body_from(clone_url: &str, branch: &str, commit: &str, note: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "ref": format!("refs/heads/{branch}"),
        "before": "0000000000000000000000000000000000000000",
        "after": commit,
        "created": false,
        "deleted": false,
        "forced": false,
        "compare": note,
        "repository": {
            "full_name": "acme/shop",
            "clone_url": clone_url,
            "ssh_url": "git@example.invalid:acme/shop.git"
        },
        "pusher": { "name": "ada" },
        "head_commit": { "id": commit, "message": note }
    }))
    .unwrap()
}
