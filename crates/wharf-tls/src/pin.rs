//! The client's side of the API's certificate. A certificate that a CA
//! the client trusts issued for the name it dialled (the proxy's ACME
//! certificate, say; the system's roots, `SSL_CERT_FILE` and
//! `SSL_CERT_DIR`) is accepted as any HTTPS client would, and renewals
//! change nothing. Any other (the API's self-signed one) is trusted as SSH
//! trusts a host key ([`Trust`]): exactly the one whose SHA-256
//! fingerprint is pinned; with nothing pinned yet (first use) any
//! certificate is accepted and its fingerprint recorded for the caller to
//! pin. Signatures are still checked with the certificate's key, so the
//! peer must hold the key.

use std::sync::{Arc, Mutex};

use rustls::DigitallySignedStruct;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::identity::fingerprint;

/// Which certificate not verified by a CA is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Any (first contact): the caller pins what [`PinnedVerifier::seen`] says.
    FirstUse,
    /// The one with this SHA-256 fingerprint (`AB:CD:…`).
    Pinned(String),
    /// None: only a CA-verified certificate.
    CaOnly,
}

/// Trusts a CA-verified certificate, else as [`Trust`] says.
#[derive(Debug)]
pub struct PinnedVerifier {
    trust: Trust,
    seen: Mutex<Option<Seen>>,
    provider: Arc<CryptoProvider>,
    /// The client's CAs (`None`: it has none).
    ca: Option<Arc<WebPkiServerVerifier>>,
}

/// The certificate a server presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub fingerprint: String,
    /// Whether a trusted CA issued it for the name dialled.
    pub ca_verified: bool,
}

impl PinnedVerifier {
    /// With the system's CAs (and `SSL_CERT_FILE`/`SSL_CERT_DIR`).
    pub fn new(trust: Trust) -> Arc<PinnedVerifier> {
        let mut roots = rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::debug!(error = %e, "a CA certificate of the system did not load");
        }
        roots.add_parsable_certificates(found.certs);
        Self::with_roots(trust, roots)
    }

    /// With the CAs of `roots`.
    pub fn with_roots(trust: Trust, roots: rustls::RootCertStore) -> Arc<PinnedVerifier> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let ca = (!roots.is_empty())
            .then(|| {
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .ok()
            })
            .flatten();
        let trust = match trust {
            Trust::Pinned(f) => Trust::Pinned(f.to_ascii_uppercase()),
            other => other,
        };
        Arc::new(PinnedVerifier {
            trust,
            seen: Mutex::new(None),
            provider,
            ca,
        })
    }

    /// The certificate the server presented, once a handshake got that far.
    pub fn seen(&self) -> Option<Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A client configuration using this verifier (HTTP/1.1).
    pub fn client_config(self: &Arc<Self>) -> Arc<rustls::ClientConfig> {
        let mut config = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(self.clone())
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = fingerprint(end_entity);
        let ca_verified = self.ca.as_ref().is_some_and(|ca| {
            ca.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
                .is_ok()
        });
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(Seen {
            fingerprint: got.clone(),
            ca_verified,
        });
        if ca_verified {
            return Ok(ServerCertVerified::assertion());
        }
        match &self.trust {
            Trust::FirstUse => Ok(ServerCertVerified::assertion()),
            Trust::Pinned(pinned) if *pinned == got => Ok(ServerCertVerified::assertion()),
            Trust::Pinned(pinned) => Err(rustls::Error::General(format!(
                "the server's certificate changed: its SHA-256 fingerprint is {got}, and {pinned} was pinned"
            ))),
            Trust::CaOnly => Err(rustls::Error::General(format!(
                "the server's certificate (SHA-256 fingerprint {got}) was not issued by a CA this machine trusts for {server_name:?}, and none is pinned for it"
            ))),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{CertSource, CertStore};
    use crate::{ApiIdentity, Resolver, testutil};
    use rustls_pki_types::pem::PemObject;

    struct Fixture {
        _tmp: tempfile::TempDir,
        id: ApiIdentity,
        certs: Arc<Resolver>,
        /// The CA that issued the proxy's certificate for `api.test`.
        root: CertificateDer<'static>,
    }

    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().expect("tempdir");
        let id = ApiIdentity::load_or_create(tmp.path()).expect("identity");
        let store = CertStore::open(tmp.path().join("proxy")).expect("store");
        let pair = testutil::self_signed(&["api.test"]);
        store
            .install(
                "api.test",
                pair.cert.as_bytes(),
                pair.key.as_bytes(),
                CertSource::Acme,
            )
            .expect("install");
        let (certs, errors) = Resolver::load(&store);
        assert!(errors.is_empty(), "{errors:?}");
        let root = CertificateDer::from_pem_slice(pair.cert.as_bytes()).expect("pem");
        Fixture {
            _tmp: tmp,
            id,
            certs: Arc::new(certs),
            root,
        }
    }

    /// A TLS handshake over an in-memory pipe between the API listener's
    /// configuration and a client trusting `trust` (and `root`, if given),
    /// dialling `name`.
    async fn connect(
        f: &Fixture,
        trust: Trust,
        root: bool,
        name: &str,
    ) -> (Result<(), std::io::Error>, Option<Seen>) {
        let server = tokio_rustls::TlsAcceptor::from(f.id.server_config(Some(f.certs.clone())));
        let mut roots = rustls::RootCertStore::empty();
        if root {
            roots.add(f.root.clone()).expect("root");
        }
        let verifier = PinnedVerifier::with_roots(trust, roots);
        let client = tokio_rustls::TlsConnector::from(verifier.client_config());
        let name = ServerName::try_from(name.to_owned()).expect("name");
        let (a, b) = tokio::io::duplex(64 * 1024);
        let (c, _s) = tokio::join!(client.connect(name, a), server.accept(b));
        (c.map(|_| ()), verifier.seen())
    }

    /// The self-signed certificate: the right pin passes, a wrong one
    /// fails, first use records what was seen, CA-only refuses it.
    #[tokio::test]
    async fn pins_are_enforced() {
        let f = fixture();
        let (ok, seen) = connect(&f, Trust::FirstUse, false, "wharf-api").await;
        assert!(ok.is_ok());
        let seen = seen.expect("seen");
        assert_eq!(seen.fingerprint, f.id.fingerprint);
        assert!(!seen.ca_verified);
        let pin = Trust::Pinned(f.id.fingerprint.to_ascii_lowercase());
        let (ok, _) = connect(&f, pin, false, "wharf-api").await;
        assert!(ok.is_ok(), "{ok:?}");
        let wrong = Trust::Pinned("00:".repeat(31) + "00");
        let (err, seen) = connect(&f, wrong, false, "wharf-api").await;
        let err = err.unwrap_err().to_string();
        assert!(err.contains("certificate changed"), "{err}");
        assert_eq!(seen.expect("seen").fingerprint, f.id.fingerprint);
        let (err, _) = connect(&f, Trust::CaOnly, true, "wharf-api").await;
        let err = err.unwrap_err().to_string();
        assert!(
            err.contains("not issued by a CA this machine trusts"),
            "{err}"
        );
    }

    /// Dialled by a name the proxy has a certificate for, the API serves
    /// it; a client whose CA issued it needs no pin, and a pin of the
    /// self-signed certificate does not stand in its way.
    #[tokio::test]
    async fn the_proxys_certificate_is_verified_by_its_ca() {
        let f = fixture();
        for trust in [
            Trust::CaOnly,
            Trust::FirstUse,
            Trust::Pinned(f.id.fingerprint.clone()),
        ] {
            let (ok, seen) = connect(&f, trust.clone(), true, "api.test").await;
            assert!(ok.is_ok(), "{trust:?}: {ok:?}");
            let seen = seen.expect("seen");
            assert!(seen.ca_verified, "{trust:?}");
            assert_ne!(seen.fingerprint, f.id.fingerprint);
        }
        // Without that CA, it is an unknown certificate like any other.
        let (err, seen) = connect(&f, Trust::CaOnly, false, "api.test").await;
        assert!(err.is_err());
        assert!(!seen.expect("seen").ca_verified);
    }
}
