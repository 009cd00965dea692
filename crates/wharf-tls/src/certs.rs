//! Parsing and checking a certificate chain and its key: PEM, the key
//! matching the leaf, the leaf naming the host; and what `list` shows of a
//! leaf (issuer, expiry, serial, names).

use std::sync::Arc;

use rustls::crypto::ring;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use crate::TlsError;
use crate::host;

/// What wharf shows of a leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeafInfo {
    /// The subjectAltName DNS names, lower case.
    pub names: Vec<String>,
    /// The issuer's CN, else its O.
    pub issuer: Option<String>,
    /// Expiry, Unix seconds.
    pub not_after: i64,
    /// The serial number, lower-case hex without separators.
    pub serial: String,
}

/// A checked chain and key, ready to serve.
#[derive(Debug)]
pub(crate) struct Checked {
    pub key: Arc<CertifiedKey>,
    pub leaf: LeafInfo,
}

/// Parses `chain_pem` and `key_pem` and checks that they can serve `host`:
/// at least one certificate, a key rustls (ring) can sign with, the key
/// matching the leaf, and the leaf naming `host` (exactly or by a `*.`
/// wildcard one level up).
pub(crate) fn check(host: &str, chain_pem: &[u8], key_pem: &[u8]) -> Result<Checked, TlsError> {
    let chain = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| TlsError::BadChain {
            host: host.to_owned(),
            detail: format!("the PEM does not parse ({err})"),
        })?;
    let Some(leaf_der) = chain.first() else {
        return Err(TlsError::BadChain {
            host: host.to_owned(),
            detail: "no CERTIFICATE block found".to_owned(),
        });
    };
    let leaf = leaf_info(leaf_der).map_err(|detail| TlsError::BadChain {
        host: host.to_owned(),
        detail,
    })?;

    let key_der = PrivateKeyDer::from_pem_slice(key_pem).map_err(|err| TlsError::BadKey {
        host: host.to_owned(),
        detail: match err {
            rustls_pki_types::pem::Error::NoItemsFound => "no PRIVATE KEY block found".to_owned(),
            other => format!("the PEM does not parse ({other})"),
        },
    })?;
    let signing_key = ring::default_provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|err| TlsError::BadKey {
            host: host.to_owned(),
            detail: format!("the key is not usable ({err})"),
        })?;

    let key = CertifiedKey::new(chain, signing_key);
    match key.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(_)) => {
            return Err(TlsError::KeyMismatch {
                host: host.to_owned(),
            });
        }
        Err(err) => {
            return Err(TlsError::BadChain {
                host: host.to_owned(),
                detail: format!("the first certificate is not usable ({err})"),
            });
        }
    }

    if !leaf.names.iter().any(|name| host::covers(name, host)) {
        return Err(TlsError::WrongHost {
            host: host.to_owned(),
            names: if leaf.names.is_empty() {
                "none".to_owned()
            } else {
                leaf.names.join(", ")
            },
        });
    }

    Ok(Checked {
        key: Arc::new(key),
        leaf,
    })
}

/// Reads what wharf shows of a leaf certificate.
pub(crate) fn leaf_info(der: &[u8]) -> Result<LeafInfo, String> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|err| format!("the first certificate is not valid X.509 ({err})"))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                names.push(dns.to_ascii_lowercase());
            }
        }
    }
    let issuer = cert.issuer();
    let issuer = issuer
        .iter_common_name()
        .chain(issuer.iter_organization())
        .find_map(|attr| attr.as_str().ok())
        .map(str::to_owned);
    let serial = cert
        .raw_serial()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    Ok(LeafInfo {
        names,
        issuer,
        not_after: cert.validity().not_after.timestamp(),
        serial,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil;

    #[test]
    fn a_matching_pair_for_the_host_passes() {
        let pair = testutil::self_signed(&["shop.example.com", "www.example.com"]);
        let checked = check("www.example.com", pair.cert.as_bytes(), pair.key.as_bytes());
        let checked = checked.expect("valid pair");
        assert_eq!(checked.leaf.names, ["shop.example.com", "www.example.com"]);
        assert_eq!(checked.leaf.issuer.as_deref(), Some("wharf test"));
        assert!(checked.leaf.not_after > 0);
        assert!(!checked.leaf.serial.is_empty());
    }

    #[test]
    fn a_key_of_another_certificate_is_a_mismatch() {
        let one = testutil::self_signed(&["shop.example.com"]);
        let two = testutil::self_signed(&["shop.example.com"]);
        let err = check("shop.example.com", one.cert.as_bytes(), two.key.as_bytes());
        assert!(matches!(err, Err(TlsError::KeyMismatch { .. })), "{err:?}");
    }

    #[test]
    fn a_certificate_for_another_host_is_refused_with_its_names() {
        let pair = testutil::self_signed(&["shop.example.com"]);
        let err = check(
            "blog.example.com",
            pair.cert.as_bytes(),
            pair.key.as_bytes(),
        );
        let message = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.starts_with(
                "the certificate for blog.example.com does not name blog.example.com (its names: shop.example.com)"
            ),
            "{message}"
        );
    }

    #[test]
    fn a_wildcard_covers_one_level_only() {
        let pair = testutil::self_signed(&["*.example.com"]);
        for (host, ok) in [
            ("shop.example.com", true),
            ("*.example.com", true),
            ("example.com", false),
            ("a.shop.example.com", false),
        ] {
            let result = check(host, pair.cert.as_bytes(), pair.key.as_bytes());
            assert_eq!(result.is_ok(), ok, "{host}: {result:?}");
        }
    }

    #[test]
    fn garbage_is_a_clear_error_never_a_panic() {
        let pair = testutil::self_signed(&["shop.example.com"]);
        let garbage: [&[u8]; 6] = [
            b"",
            b"hello",
            b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
            b"-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n",
            &[0xff, 0x00, 0x13, 0x37],
            b"-----BEGIN CERTIFICATE-----\n",
        ];
        for chain in garbage {
            let err = check("shop.example.com", chain, pair.key.as_bytes());
            assert!(matches!(err, Err(TlsError::BadChain { .. })), "{err:?}");
        }
        for key in garbage {
            let err = check("shop.example.com", pair.cert.as_bytes(), key);
            assert!(matches!(err, Err(TlsError::BadKey { .. })), "{err:?}");
        }
        // A certificate where the key belongs.
        let err = check(
            "shop.example.com",
            pair.cert.as_bytes(),
            pair.cert.as_bytes(),
        );
        let message = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(
            message,
            "could not read the private key for shop.example.com: no PRIVATE KEY block found; pass the certificate's private key as unencrypted PEM (PKCS#8, PKCS#1 or SEC1)"
        );
    }
}
