//! wharf's TLS plumbing: certificates on disk, the SNI resolver, HTTP-01
//! challenge answers, and ACME ordering and renewal.
//!
//! - [`CertStore`]: `certs/<host>/{cert.pem,key.pem,meta.json}` and the ACME
//!   account credentials under a directory the caller gives (the server uses
//!   `<data>/tls`). Every install is validated first; a bad input changes
//!   nothing.
//! - [`Resolver`]: a `rustls` [`ResolvesServerCert`](rustls::server::ResolvesServerCert)
//!   that maps SNI to a certificate (exact host first, then a one-level
//!   wildcard), swapped atomically after every install.
//! - [`Challenges`]: the HTTP-01 tokens in flight, for the proxy's plain
//!   listener to answer at `/.well-known/acme-challenge/<token>`.
//! - [`Manager`]: ties them together, orders certificates from an ACME
//!   server in the background and renews them ([`Manager::run`]).
//!
//! - [`ApiIdentity`] and [`pin::PinnedVerifier`]: the API listener's
//!   self-signed certificate, and the client that pins its fingerprint.
//!
//! The crate knows nothing of the proxy, the store or HTTP routing. Pure
//! decisions (when to renew, how long to back off) live in [`schedule`].

mod acme;
mod certs;
mod challenges;
mod clock;
mod error;
mod host;
mod identity;
mod manager;
pub mod pin;
mod resolver;
pub mod schedule;
mod store;

#[cfg(test)]
mod testutil;

pub use challenges::Challenges;
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::TlsError;
pub use host::validate_host;
pub use identity::{API_CERT_NAME, ApiIdentity, fingerprint};
pub use manager::{AcmeSettings, AcmeStatus, Manager};
pub use resolver::Resolver;
pub use store::{CertInfo, CertMeta, CertSource, CertStore};
