//! The SNI resolver: a server name → the certificate to present, exact
//! names first, then a `*.` wildcard one level up. The table is rebuilt
//! from the store and swapped atomically; a handshake reads one table.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::store::CertStore;
use crate::{TlsError, host};

/// Chooses the certificate for a TLS handshake by its SNI.
pub struct Resolver {
    table: ArcSwap<Table>,
    reloading: Mutex<()>,
}

#[derive(Default)]
struct Table {
    /// The store's hosts and their certificates' expiry.
    hosts: HashMap<String, (Arc<CertifiedKey>, i64)>,
    /// Exact names (store hosts first, then the certificates' other names).
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Wildcards by the name they sit under: `*.example.com` → `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
}

impl Resolver {
    /// A resolver that knows no name.
    pub fn empty() -> Self {
        Self {
            table: ArcSwap::from_pointee(Table::default()),
            reloading: Mutex::new(()),
        }
    }

    /// A resolver loaded from `store`, with the hosts that could not be
    /// loaded (they are left out; the others serve).
    pub fn load(store: &CertStore) -> (Self, Vec<(String, TlsError)>) {
        let resolver = Self::empty();
        let errors = resolver.reload(store);
        (resolver, errors)
    }

    /// Rebuilds the table from `store` and swaps it in. Hosts that could
    /// not be loaded are left out and returned with the reason.
    pub fn reload(&self, store: &CertStore) -> Vec<(String, TlsError)> {
        // One reload at a time, so an older snapshot never replaces a newer one.
        let _one = self
            .reloading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut errors = Vec::new();
        let hosts = match store.hosts() {
            Ok(hosts) => hosts,
            Err(err) => {
                errors.push((String::new(), err));
                return errors;
            }
        };
        let mut loaded = Vec::new();
        for host in hosts {
            match store.load(&host) {
                Ok(Some(checked)) => loaded.push((host, checked)),
                Ok(None) => {}
                Err(err) => errors.push((host, err)),
            }
        }
        let mut table = Table::default();
        for (host, checked) in &loaded {
            if let Some(parent) = host.strip_prefix("*.") {
                table
                    .wildcard
                    .insert(parent.to_owned(), Arc::clone(&checked.key));
            } else {
                table.exact.insert(host.clone(), Arc::clone(&checked.key));
            }
            table.hosts.insert(
                host.clone(),
                (Arc::clone(&checked.key), checked.leaf.not_after),
            );
        }
        for (_, checked) in &loaded {
            for name in &checked.leaf.names {
                let slot = match name.strip_prefix("*.") {
                    Some(parent) => table.wildcard.entry(parent.to_owned()),
                    None => table.exact.entry(name.clone()),
                };
                slot.or_insert_with(|| Arc::clone(&checked.key));
            }
        }
        self.table.store(Arc::new(table));
        errors
    }

    /// The certificate for server name `name` (any case, a trailing dot
    /// allowed): the exact name, else a wildcard one level up.
    pub fn resolve_name(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let name = host::normalize(name);
        if name.contains('*') {
            return None;
        }
        let table = self.table.load();
        if let Some(key) = table.exact.get(&name) {
            return Some(Arc::clone(key));
        }
        let parent = host::parent(&name)?;
        table.wildcard.get(parent).map(Arc::clone)
    }

    /// Whether a handshake for `host` would get a certificate.
    pub fn has(&self, host: &str) -> bool {
        if let Some(parent) = host.strip_prefix("*.") {
            return self.table.load().wildcard.contains_key(parent);
        }
        self.resolve_name(host).is_some()
    }

    /// The expiry of the certificate stored for `host` itself, when it loaded.
    pub(crate) fn not_after(&self, host: &str) -> Option<i64> {
        self.table.load().hosts.get(host).map(|(_, t)| *t)
    }
}

impl Default for Resolver {
    fn default() -> Self {
        Self::empty()
    }
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let table = self.table.load();
        let mut hosts: Vec<&String> = table.hosts.keys().collect();
        hosts.sort();
        f.debug_struct("Resolver").field("hosts", &hosts).finish()
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.resolve_name(client_hello.server_name()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CertSource;
    use crate::testutil;

    use rustls::pki_types::{CertificateDer, ServerName};
    use rustls::{ClientConfig, RootCertStore, ServerConfig};
    use rustls_pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct Fixture {
        _tmp: tempfile::TempDir,
        store: CertStore,
        certs: HashMap<&'static str, String>,
    }

    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().expect("temp dir");
        let store = CertStore::open(tmp.path()).expect("store");
        let mut certs = HashMap::new();
        for (host, names) in [
            ("shop.example.com", &["shop.example.com"][..]),
            ("*.example.com", &["*.example.com"][..]),
            ("www.example.org", &["www.example.org", "example.org"][..]),
        ] {
            let pair = testutil::self_signed(names);
            store
                .install(
                    host,
                    pair.cert.as_bytes(),
                    pair.key.as_bytes(),
                    CertSource::Files,
                )
                .expect("install");
            certs.insert(host, pair.cert);
        }
        Fixture {
            _tmp: tmp,
            store,
            certs,
        }
    }

    fn leaf_of(key: Option<Arc<CertifiedKey>>) -> Option<Vec<u8>> {
        key.and_then(|k| k.cert.first().map(|c| c.as_ref().to_vec()))
    }

    fn der(pem: &str) -> Option<Vec<u8>> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .ok()
            .map(|c| c.as_ref().to_vec())
    }

    #[test]
    fn exact_first_then_one_level_wildcard_case_insensitive() {
        let f = fixture();
        let (resolver, errors) = Resolver::load(&f.store);
        assert!(errors.is_empty(), "{errors:?}");
        let shop = der(&f.certs["shop.example.com"]);
        let wildcard = der(&f.certs["*.example.com"]);
        let org = der(&f.certs["www.example.org"]);
        let cases = [
            ("shop.example.com", shop.clone()),
            ("SHOP.Example.COM", shop.clone()),
            ("shop.example.com.", shop),
            ("blog.example.com", wildcard.clone()),
            ("Blog.EXAMPLE.com", wildcard),
            ("a.blog.example.com", None),
            ("example.com", None),
            ("www.example.org", org.clone()),
            ("example.org", org),
            ("unknown.test", None),
            ("", None),
            (".", None),
            ("*.example.com", None),
        ];
        for (name, want) in cases {
            assert_eq!(leaf_of(resolver.resolve_name(name)), want, "{name:?}");
        }
        assert!(resolver.has("shop.example.com"));
        assert!(resolver.has("blog.example.com"));
        assert!(resolver.has("*.example.com"));
        assert!(!resolver.has("*.example.org"));
        assert!(!resolver.has("unknown.test"));
    }

    #[test]
    fn reload_swaps_in_new_certificates_and_drops_removed_ones() {
        let f = fixture();
        let (resolver, _) = Resolver::load(&f.store);
        let replacement = testutil::self_signed(&["shop.example.com"]);
        f.store
            .install(
                "shop.example.com",
                replacement.cert.as_bytes(),
                replacement.key.as_bytes(),
                CertSource::Files,
            )
            .expect("install");
        assert_eq!(
            leaf_of(resolver.resolve_name("shop.example.com")),
            der(&f.certs["shop.example.com"])
        );
        assert!(resolver.reload(&f.store).is_empty());
        assert_eq!(
            leaf_of(resolver.resolve_name("shop.example.com")),
            der(&replacement.cert)
        );
        f.store.remove("*.example.com").expect("remove");
        resolver.reload(&f.store);
        assert!(!resolver.has("blog.example.com"));
    }

    #[test]
    fn a_host_whose_files_broke_is_left_out_and_reported() {
        let f = fixture();
        let dir = f.store.host_dir("shop.example.com").expect("dir");
        let other = testutil::self_signed(&["shop.example.com"]);
        std::fs::write(dir.join("key.pem"), other.key).expect("write");
        let (resolver, errors) = Resolver::load(&f.store);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, "shop.example.com");
        assert!(matches!(errors[0].1, TlsError::KeyMismatch { .. }));
        // The wildcard still covers it, the others still serve.
        assert_eq!(
            leaf_of(resolver.resolve_name("shop.example.com")),
            der(&f.certs["*.example.com"])
        );
        assert!(resolver.has("www.example.org"));
    }

    /// A real handshake over an in-memory pipe: `sni` is the name the client
    /// asks for (`None`: it connects by IP address and sends no SNI).
    async fn handshake(resolver: Arc<Resolver>, root_pem: &str, sni: Option<&str>) -> bool {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_cert_resolver(resolver);
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
            roots.add(cert.expect("pem")).expect("root");
        }
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let server_task = tokio::spawn(async move {
            let mut tls = acceptor.accept(server_io).await.ok()?;
            tls.write_all(b"hi").await.ok()?;
            tls.shutdown().await.ok()
        });
        let name = match sni {
            Some(name) => ServerName::try_from(name.to_owned()).expect("name"),
            None => ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let ok = match connector.connect(name, client_io).await {
            Ok(mut tls) => {
                let mut buf = [0u8; 2];
                tls.read_exact(&mut buf).await.is_ok() && &buf == b"hi"
            }
            Err(_) => false,
        };
        let _ = server_task.await;
        ok
    }

    #[tokio::test]
    async fn handshakes_succeed_for_known_names_and_fail_cleanly_otherwise() {
        let f = fixture();
        let (resolver, _) = Resolver::load(&f.store);
        let resolver = Arc::new(resolver);
        let shop = &f.certs["shop.example.com"];
        let wildcard = &f.certs["*.example.com"];
        assert!(handshake(Arc::clone(&resolver), shop, Some("shop.example.com")).await);
        assert!(handshake(Arc::clone(&resolver), shop, Some("SHOP.example.com")).await);
        assert!(handshake(Arc::clone(&resolver), wildcard, Some("blog.example.com")).await);
        assert!(!handshake(Arc::clone(&resolver), shop, Some("unknown.test")).await);
        assert!(!handshake(Arc::clone(&resolver), shop, None).await);
    }
}
