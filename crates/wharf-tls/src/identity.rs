//! The API listener's own certificate: made self-signed at the first start
//! (`<tls dir>/api/{cert.pem,key.pem}`, the key 0600) and kept, so its
//! SHA-256 fingerprint stays the same across restarts. The server prints
//! the fingerprint; a client pins it on first use ([`crate::pin`]).
//!
//! A client that reaches the API by a host name the proxy has a
//! certificate for (an ACME one, say) gets that certificate instead, and
//! verifies it against its CAs: nothing to pin, and renewals change
//! nothing for it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{CertificateParams, DnType, KeyPair};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sha2::{Digest, Sha256};

use crate::TlsError;
use crate::certs;
use crate::resolver::Resolver;
use crate::store::{Mode, write_atomic};

/// The name the self-signed certificate carries (clients pin it, they do
/// not check its name).
pub const API_CERT_NAME: &str = "wharf-api";

/// The API's certificate, ready to serve.
#[derive(Debug, Clone)]
pub struct ApiIdentity {
    key: Arc<rustls::sign::CertifiedKey>,
    /// SHA-256 of the leaf certificate (DER), as `AB:CD:…`.
    pub fingerprint: String,
    /// Whether it was made by this call (first start).
    pub created: bool,
    pub cert_path: PathBuf,
}

impl ApiIdentity {
    /// Loads `<dir>/api/cert.pem` and `key.pem`, making them first when
    /// they do not exist.
    pub fn load_or_create(dir: &Path) -> Result<ApiIdentity, TlsError> {
        let api = dir.join("api");
        let cert_path = api.join("cert.pem");
        let key_path = api.join("key.pem");
        let mut created = false;
        if !cert_path.exists() || !key_path.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .create(&api)
                .map_err(|err| TlsError::io("create the directory", &api, err))?;
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&api, std::fs::Permissions::from_mode(0o700))
                .map_err(|err| TlsError::io("set the mode of", &api, err))?;
            let (cert, key) = self_signed()?;
            // The key first: a cert without its key is remade; the reverse
            // would serve a key that no pinned fingerprint knows.
            write_atomic(&key_path, key.as_bytes(), Mode::Secret)?;
            write_atomic(&cert_path, cert.as_bytes(), Mode::Public)?;
            created = true;
        }
        let read = |path: &Path| std::fs::read(path).map_err(|err| TlsError::io("read", path, err));
        let (cert_pem, key_pem) = (read(&cert_path)?, read(&key_path)?);
        let checked =
            certs::check(API_CERT_NAME, &cert_pem, &key_pem).map_err(|e| TlsError::Corrupt {
                path: cert_path.clone(),
                detail: e.to_string(),
            })?;
        let leaf = CertificateDer::pem_slice_iter(&cert_pem)
            .next()
            .and_then(Result::ok)
            .ok_or_else(|| TlsError::Corrupt {
                path: cert_path.clone(),
                detail: "no CERTIFICATE block".into(),
            })?;
        Ok(ApiIdentity {
            key: checked.key,
            fingerprint: fingerprint(&leaf),
            created,
            cert_path,
        })
    }

    /// A rustls server configuration (HTTP/1.1) serving, for a client
    /// that names a host the proxy has a certificate for (its ACME or
    /// file certificates, `certs`), that certificate, which a client
    /// verifies against its CAs; else this self-signed one, which a client
    /// pins.
    pub fn server_config(&self, certs: Option<Arc<Resolver>>) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(ApiCert {
                certs,
                own: self.key.clone(),
            }));
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

/// The proxy's certificate for the name the client asked for, else the
/// API's own.
#[derive(Debug)]
struct ApiCert {
    certs: Option<Arc<Resolver>>,
    own: Arc<rustls::sign::CertifiedKey>,
}

impl rustls::server::ResolvesServerCert for ApiCert {
    fn resolve(
        &self,
        hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let proxy = self
            .certs
            .as_ref()
            .zip(hello.server_name())
            .and_then(|(certs, name)| certs.resolve_name(name));
        Some(proxy.unwrap_or_else(|| self.own.clone()))
    }
}

/// A new self-signed certificate and key (PEM) for [`API_CERT_NAME`].
fn self_signed() -> Result<(String, String), TlsError> {
    let fail = |detail: String| TlsError::Corrupt {
        path: PathBuf::from("api/cert.pem"),
        detail: format!("could not make the API's self-signed certificate: {detail}"),
    };
    let mut params =
        CertificateParams::new(vec![API_CERT_NAME.to_owned()]).map_err(|e| fail(e.to_string()))?;
    params
        .distinguished_name
        .push(DnType::CommonName, "wharf API (self-signed)");
    // Long-lived: the fingerprint is what clients trust, not the dates.
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    let key = KeyPair::generate().map_err(|e| fail(e.to_string()))?;
    let cert = params.self_signed(&key).map_err(|e| fail(e.to_string()))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// SHA-256 of a certificate's DER, as upper-case hex pairs joined by `:`
/// (what `openssl x509 -noout -fingerprint -sha256` prints).
pub fn fingerprint(cert_der: &[u8]) -> String {
    Sha256::digest(cert_der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_then_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = ApiIdentity::load_or_create(dir.path()).expect("made");
        assert!(first.created);
        assert_eq!(first.fingerprint.len(), 32 * 3 - 1);
        let again = ApiIdentity::load_or_create(dir.path()).expect("loaded");
        assert!(!again.created);
        assert_eq!(first.fingerprint, again.fingerprint);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("api/key.pem"))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let _config = first.server_config(None);
    }

    #[test]
    fn a_broken_key_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        ApiIdentity::load_or_create(dir.path()).expect("made");
        std::fs::write(dir.path().join("api/key.pem"), "garbage").expect("write");
        let err = ApiIdentity::load_or_create(dir.path()).unwrap_err();
        assert!(err.to_string().contains("remove it"), "{err}");
    }
}
