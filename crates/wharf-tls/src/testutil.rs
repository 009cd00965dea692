//! Certificates made up for the unit tests.

use rcgen::{CertificateParams, DnType, KeyPair};

/// A PEM certificate and its PEM key.
pub(crate) struct Pair {
    pub cert: String,
    pub key: String,
}

/// A self-signed certificate for `names`, issued by "wharf test".
pub(crate) fn self_signed(names: &[&str]) -> Pair {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = CertificateParams::new(names).expect("valid names");
    params
        .distinguished_name
        .push(DnType::CommonName, "wharf test");
    let key = KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("certificate");
    Pair {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}
