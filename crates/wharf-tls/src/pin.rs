//! The client's side of the API's self-signed certificate: trust exactly
//! one certificate, the one whose SHA-256 fingerprint is pinned, as SSH
//! trusts a host key. With nothing pinned yet (first use) any certificate
//! is accepted and its fingerprint is recorded for the caller to pin; once
//! pinned, another certificate is refused. Signatures are still checked
//! with the certificate's key, so the peer must hold the pinned key.

use std::sync::{Arc, Mutex};

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::identity::fingerprint;

/// Trusts the pinned certificate only (or, with none, the first one seen).
#[derive(Debug)]
pub struct PinnedVerifier {
    expected: Option<String>,
    seen: Mutex<Option<String>>,
    provider: Arc<CryptoProvider>,
}

impl PinnedVerifier {
    /// `expected`: the pinned fingerprint (`AB:CD:…`), or `None` on first use.
    pub fn new(expected: Option<String>) -> Arc<PinnedVerifier> {
        Arc::new(PinnedVerifier {
            expected: expected.map(|f| f.to_ascii_uppercase()),
            seen: Mutex::new(None),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        })
    }

    /// The fingerprint of the certificate the server presented, once a
    /// handshake got that far.
    pub fn seen(&self) -> Option<String> {
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
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = fingerprint(end_entity);
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(got.clone());
        match &self.expected {
            None => Ok(ServerCertVerified::assertion()),
            Some(pinned) if *pinned == got => Ok(ServerCertVerified::assertion()),
            Some(pinned) => Err(rustls::Error::General(format!(
                "the server's certificate changed: its SHA-256 fingerprint is {got}, and {pinned} was pinned"
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
    use crate::ApiIdentity;

    /// A TLS handshake over an in-memory pipe between the API identity and
    /// a pinned client: the right pin passes, a wrong one fails, none
    /// records what was seen.
    #[tokio::test]
    async fn pins_are_enforced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = ApiIdentity::load_or_create(dir.path()).expect("identity");
        let connect = |pin: Option<String>| {
            let server = tokio_rustls::TlsAcceptor::from(id.server_config());
            async move {
                let (a, b) = tokio::io::duplex(64 * 1024);
                let verifier = PinnedVerifier::new(pin);
                let client = tokio_rustls::TlsConnector::from(verifier.client_config());
                let name = ServerName::try_from("wharf-api").expect("name");
                let (c, _s) = tokio::join!(client.connect(name, a), server.accept(b));
                (c.map(|_| ()), verifier.seen())
            }
        };
        let (ok, seen) = connect(None).await;
        assert!(ok.is_ok());
        assert_eq!(seen.as_deref(), Some(id.fingerprint.as_str()));
        let (ok, _) = connect(Some(id.fingerprint.to_ascii_lowercase())).await;
        assert!(ok.is_ok(), "{ok:?}");
        let wrong = "00:".repeat(31) + "00";
        let (err, seen) = connect(Some(wrong)).await;
        let err = err.unwrap_err().to_string();
        assert!(err.contains("certificate changed"), "{err}");
        assert_eq!(seen.as_deref(), Some(id.fingerprint.as_str()));
    }
}
