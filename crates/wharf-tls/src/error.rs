//! The crate's error type: every message says what failed, on what, and
//! what to do.

use std::io;
use std::path::PathBuf;

/// What can go wrong in wharf's TLS plumbing.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The host name cannot be a certificate's name or a directory name.
    #[error(
        "`{host}` is not a host name wharf can hold a certificate for: {reason}; use a lowercase DNS name such as `shop.example.com`"
    )]
    InvalidHost {
        /// The name as given (control characters escaped).
        host: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// The certificate chain PEM could not be used.
    #[error(
        "could not read the certificate chain for {host}: {detail}; pass PEM whose first CERTIFICATE block is the certificate for {host}, followed by its intermediates"
    )]
    BadChain {
        /// The host the chain was for.
        host: String,
        /// What was wrong with it.
        detail: String,
    },

    /// The private key PEM could not be used.
    #[error(
        "could not read the private key for {host}: {detail}; pass the certificate's private key as unencrypted PEM (PKCS#8, PKCS#1 or SEC1)"
    )]
    BadKey {
        /// The host the key was for.
        host: String,
        /// What was wrong with it.
        detail: String,
    },

    /// The private key is not the one the leaf certificate was issued for.
    #[error(
        "the private key for {host} does not match its certificate; pass the key the certificate was issued for"
    )]
    KeyMismatch {
        /// The host of the certificate.
        host: String,
    },

    /// The leaf certificate does not name the host.
    #[error(
        "the certificate for {host} does not name {host} (its names: {names}); use a certificate whose subjectAltName lists {host} or a `*.` wildcard one level above it"
    )]
    WrongHost {
        /// The host the certificate was given for.
        host: String,
        /// The DNS names the certificate does carry, comma-separated.
        names: String,
    },

    /// A file operation in the certificate directory failed.
    #[error("could not {action} {}: {source}; check that wharf may read and write its data directory", path.display())]
    Io {
        /// What was being done, e.g. "write".
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },

    /// A file wharf wrote itself could not be parsed any more.
    #[error("could not read {}: {detail}; remove it and wharf writes it again", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },

    /// A certificate or key file named in the configuration could not be read.
    #[error("could not read the {what} file {} for {host}: {source}; check the path in the host's TLS settings", path.display())]
    ReadFile {
        /// The host the file is for.
        host: String,
        /// "certificate" or "key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },

    /// ACME was asked for but no ACME directory is configured.
    #[error(
        "cannot order a certificate for {host}: no ACME directory is configured; configure ACME or give {host} a certificate and key file"
    )]
    AcmeNotConfigured {
        /// The host.
        host: String,
    },

    /// Wildcard names cannot be validated over HTTP-01.
    #[error(
        "cannot order a certificate for `{host}` over HTTP-01: wildcard names need a DNS-01 challenge, which wharf does not do; give `{host}` a certificate and key file instead"
    )]
    WildcardAcme {
        /// The wildcard host.
        host: String,
    },

    /// The ACME directory URL is unusable.
    #[error(
        "the ACME directory URL `{url}` is not usable: {reason}; use an https:// URL such as `https://acme-v02.api.letsencrypt.org/directory`"
    )]
    InvalidDirectoryUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },

    /// A CA file to trust for the ACME server could not be used.
    #[error("could not use {} as a CA for the ACME server: {detail}; pass a PEM file with at least one CERTIFICATE block", path.display())]
    BadRoot {
        /// The CA file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },

    /// An ACME order needs a tokio runtime to run in the background.
    #[error(
        "cannot start an ACME order for {host}: not called from within a tokio runtime; call `want_acme` from async code"
    )]
    NoRuntime {
        /// The host.
        host: String,
    },
}

impl TlsError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
