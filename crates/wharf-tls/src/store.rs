//! Certificates on disk, under a directory the caller gives (the server
//! passes `<data>/tls`):
//!
//! ```text
//! certs/<host>/cert.pem    the chain, leaf first            (0644)
//! certs/<host>/key.pem     the private key                  (0600)
//! certs/<host>/meta.json   source, last error, attempts     (0644, no secret)
//! acme/account-<sha256(directory URL), 16 hex>.json         (0600)
//! ```
//!
//! Directories are created 0700. Every file is written to a temp file in
//! the same directory (keys: created 0600) and renamed over the old one, so
//! a reader sees the old or the new file, never half of one. `install`
//! checks its input completely before writing anything.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::certs::{self, Checked, LeafInfo};
use crate::{TlsError, host};

const CERT_FILE: &str = "cert.pem";
const KEY_FILE: &str = "key.pem";
const META_FILE: &str = "meta.json";

/// Where a host's certificate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertSource {
    /// Ordered from an ACME server and renewed by wharf.
    Acme,
    /// Files given by the operator; never renewed by wharf.
    Files,
}

/// `meta.json`: how a host gets its certificate and how the last ACME
/// order went. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertMeta {
    /// Where the certificate comes from.
    pub source: CertSource,
    /// Why the last order failed, when it did.
    #[serde(default)]
    pub last_error: Option<String>,
    /// When the last order started (Unix seconds).
    #[serde(default)]
    pub last_attempt: Option<i64>,
    /// Not before this time is a failed order tried again (Unix seconds).
    #[serde(default)]
    pub next_attempt: Option<i64>,
    /// Failed orders in a row (the backoff's attempt count).
    #[serde(default)]
    pub failures: u32,
    /// Where the stored certificate came from (it differs from `source`
    /// while a host moves from files to ACME: the files' certificate keeps
    /// serving until the first ACME one is installed).
    #[serde(default)]
    pub installed: Option<CertSource>,
}

impl CertMeta {
    /// A fresh record for `source`: no attempt, no error.
    pub fn new(source: CertSource) -> Self {
        Self {
            source,
            last_error: None,
            last_attempt: None,
            next_attempt: None,
            failures: 0,
            installed: None,
        }
    }
}

/// What wharf knows about one host's certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    /// The host (the store's directory name).
    pub host: String,
    /// Where the certificate comes from.
    pub source: CertSource,
    /// The issuer's CN (else its O); `None` while there is no certificate.
    pub issuer: Option<String>,
    /// The leaf's expiry, Unix seconds; `None` while there is no certificate.
    pub not_after: Option<i64>,
    /// The leaf's serial number, lower-case hex; `None` without certificate.
    pub serial: Option<String>,
    /// The leaf's DNS names.
    pub names: Vec<String>,
    /// Why the last order failed, or why the stored files are unusable.
    pub last_error: Option<String>,
    /// When the last order started (Unix seconds).
    pub last_attempt: Option<i64>,
    /// When a failed order is tried again (Unix seconds).
    pub next_attempt: Option<i64>,
}

/// The certificate directory.
#[derive(Debug, Clone)]
pub struct CertStore {
    dir: PathBuf,
}

impl CertStore {
    /// Opens (creating, 0700) `dir`, `dir/certs` and `dir/acme`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, TlsError> {
        let store = Self { dir: dir.into() };
        for path in [
            store.dir.clone(),
            store.dir.join("certs"),
            store.dir.join("acme"),
        ] {
            make_dir(&path)?;
        }
        Ok(store)
    }

    /// The directory this store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory of `host`'s files (after checking the name).
    pub fn host_dir(&self, host: &str) -> Result<PathBuf, TlsError> {
        host::validate_host(host)?;
        Ok(self.dir.join("certs").join(host))
    }

    /// Checks `chain_pem` and `key_pem` for `host` (see [`TlsError`] for
    /// what is refused), then writes `cert.pem`, `key.pem` (0600) and
    /// `meta.json` (errors and backoff cleared; the last attempt kept).
    /// On a bad input nothing on disk changes.
    pub fn install(
        &self,
        host: &str,
        chain_pem: &[u8],
        key_pem: &[u8],
        source: CertSource,
    ) -> Result<CertInfo, TlsError> {
        let dir = self.host_dir(host)?;
        let checked = certs::check(host, chain_pem, key_pem)?;
        let last_attempt = self.meta(host).ok().flatten().and_then(|m| m.last_attempt);
        make_dir(&dir)?;
        write_atomic(&dir.join(KEY_FILE), key_pem, Mode::Secret)?;
        write_atomic(&dir.join(CERT_FILE), chain_pem, Mode::Public)?;
        let meta = CertMeta {
            last_attempt,
            installed: Some(source),
            ..CertMeta::new(source)
        };
        self.write_meta(host, &meta)?;
        Ok(info(host, &meta, Some(&checked.leaf), None))
    }

    /// Loads `host`'s certificate and key, checked as by `install`.
    /// `Ok(None)` when the host has no certificate.
    pub(crate) fn load(&self, host: &str) -> Result<Option<Checked>, TlsError> {
        let dir = self.host_dir(host)?;
        let cert_path = dir.join(CERT_FILE);
        let Some(chain) = read_optional(&cert_path)? else {
            return Ok(None);
        };
        let key_path = dir.join(KEY_FILE);
        let key = read_optional(&key_path)?.ok_or_else(|| TlsError::Corrupt {
            path: key_path,
            detail: "the certificate has no key next to it".to_owned(),
        })?;
        certs::check(host, &chain, &key).map(Some)
    }

    /// The hosts that have a directory in the store, sorted.
    pub fn hosts(&self) -> Result<Vec<String>, TlsError> {
        let certs = self.dir.join("certs");
        let entries = fs::read_dir(&certs).map_err(|e| TlsError::io("list", &certs, e))?;
        let mut hosts = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| TlsError::io("list", &certs, e))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if host::validate_host(&name).is_ok() && entry.path().is_dir() {
                hosts.push(name);
            }
        }
        hosts.sort();
        Ok(hosts)
    }

    /// What is known about every host, sorted by host. A host whose stored
    /// files are unreadable is listed with the reason in `last_error`.
    pub fn list(&self) -> Result<Vec<CertInfo>, TlsError> {
        let mut infos = Vec::new();
        for host in self.hosts()? {
            if let Some(info) = self.get(&host)? {
                infos.push(info);
            }
        }
        Ok(infos)
    }

    /// What is known about `host`; `Ok(None)` when nothing is.
    pub fn get(&self, host: &str) -> Result<Option<CertInfo>, TlsError> {
        let dir = self.host_dir(host)?;
        let (meta, meta_error) = match self.meta(host) {
            Ok(meta) => (meta, None),
            Err(err) => (None, Some(err.to_string())),
        };
        let cert_path = dir.join(CERT_FILE);
        let chain = read_optional(&cert_path)?;
        if meta.is_none() && meta_error.is_none() && chain.is_none() {
            return Ok(None);
        }
        let meta = meta.unwrap_or_else(|| CertMeta::new(CertSource::Files));
        let (leaf, cert_error) = match chain.as_deref().map(first_leaf) {
            None => (None, None),
            Some(Ok(leaf)) => (Some(leaf), None),
            Some(Err(detail)) => (
                None,
                Some(
                    TlsError::Corrupt {
                        path: cert_path,
                        detail,
                    }
                    .to_string(),
                ),
            ),
        };
        Ok(Some(info(
            host,
            &meta,
            leaf.as_ref(),
            cert_error.or(meta_error),
        )))
    }

    /// Forgets `host`: its certificate, key and meta. `Ok(false)` when
    /// there was nothing to forget.
    pub fn remove(&self, host: &str) -> Result<bool, TlsError> {
        let dir = self.host_dir(host)?;
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(err) => Err(TlsError::io("remove", dir, err)),
        }
    }

    /// `host`'s `meta.json`; `Ok(None)` when it has none.
    pub fn meta(&self, host: &str) -> Result<Option<CertMeta>, TlsError> {
        let path = self.host_dir(host)?.join(META_FILE);
        let Some(bytes) = read_optional(&path)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|err| TlsError::Corrupt {
                path,
                detail: err.to_string(),
            })
    }

    /// Writes `host`'s `meta.json` (creating the host's directory).
    pub fn write_meta(&self, host: &str, meta: &CertMeta) -> Result<(), TlsError> {
        let dir = self.host_dir(host)?;
        make_dir(&dir)?;
        let path = dir.join(META_FILE);
        let mut json = serde_json::to_vec_pretty(meta).map_err(|err| TlsError::Corrupt {
            path: path.clone(),
            detail: err.to_string(),
        })?;
        json.push(b'\n');
        write_atomic(&path, &json, Mode::Public)
    }

    /// Where the ACME account for `directory_url` is kept: one file per
    /// directory URL, so staging and production never share an account.
    pub fn account_path(&self, directory_url: &str) -> PathBuf {
        let digest = Sha256::digest(directory_url.as_bytes());
        let hash: String = digest
            .iter()
            .take(8)
            .map(|byte| format!("{byte:02x}"))
            .collect();
        self.dir.join("acme").join(format!("account-{hash}.json"))
    }

    /// The saved account credentials for `directory_url`, if any.
    pub(crate) fn read_account(&self, directory_url: &str) -> Result<Option<Vec<u8>>, TlsError> {
        read_optional(&self.account_path(directory_url))
    }

    /// Saves account credentials (0600).
    pub(crate) fn write_account(&self, directory_url: &str, json: &[u8]) -> Result<(), TlsError> {
        make_dir(&self.dir.join("acme"))?;
        write_atomic(&self.account_path(directory_url), json, Mode::Secret)
    }

    /// Forgets the saved account for `directory_url`.
    pub(crate) fn remove_account(&self, directory_url: &str) -> Result<(), TlsError> {
        let path = self.account_path(directory_url);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(TlsError::io("remove", path, err)),
        }
    }
}

fn info(host: &str, meta: &CertMeta, leaf: Option<&LeafInfo>, error: Option<String>) -> CertInfo {
    CertInfo {
        host: host.to_owned(),
        source: meta.source,
        issuer: leaf.and_then(|l| l.issuer.clone()),
        not_after: leaf.map(|l| l.not_after),
        serial: leaf.map(|l| l.serial.clone()),
        names: leaf.map(|l| l.names.clone()).unwrap_or_default(),
        last_error: error.or_else(|| meta.last_error.clone()),
        last_attempt: meta.last_attempt,
        next_attempt: meta.next_attempt,
    }
}

fn first_leaf(chain_pem: &[u8]) -> Result<LeafInfo, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let leaf = CertificateDer::pem_slice_iter(chain_pem)
        .next()
        .ok_or_else(|| "no CERTIFICATE block found".to_owned())?
        .map_err(|err| format!("the PEM does not parse ({err})"))?;
    certs::leaf_info(&leaf)
}

fn make_dir(path: &Path) -> Result<(), TlsError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|err| TlsError::io("create the directory", path, err))
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, TlsError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(TlsError::io("read", path, err)),
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Mode {
    /// 0600: keys and account credentials.
    Secret,
    /// 0644 (less the umask).
    Public,
}

/// Writes `bytes` to a temp file next to `path` (created with the final
/// mode, so a key is never readable by others, not even briefly), syncs
/// it, and renames it over `path`.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: Mode) -> Result<(), TlsError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{:016x}", fastrand::u64(..)));
    let result = write_new(&tmp, bytes, mode)
        .map_err(|err| TlsError::io("write", &tmp, err))
        .and_then(|()| fs::rename(&tmp, path).map_err(|err| TlsError::io("write", path, err)));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    // Make the rename durable; a failure here loses nothing already renamed.
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

fn write_new(path: &Path, bytes: &[u8], mode: Mode) -> io::Result<()> {
    let bits = match mode {
        Mode::Secret => 0o600,
        Mode::Public => 0o644,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(bits)
        .open(path)?;
    if let Mode::Secret = mode {
        file.set_permissions(Permissions::from_mode(0o600))?;
    }
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil;

    fn store() -> (tempfile::TempDir, CertStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = CertStore::open(dir.path().join("tls")).expect("store");
        (dir, store)
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    #[test]
    fn install_writes_the_chain_a_0600_key_and_meta_and_lists_it() {
        let (_tmp, store) = store();
        let pair = testutil::self_signed(&["shop.example.com"]);
        let info = store
            .install(
                "shop.example.com",
                pair.cert.as_bytes(),
                pair.key.as_bytes(),
                CertSource::Files,
            )
            .expect("install");
        let dir = store.host_dir("shop.example.com").expect("dir");
        assert_eq!(files(&dir), ["cert.pem", "key.pem", "meta.json"]);
        assert_eq!(mode(&dir.join("key.pem")), 0o600);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(store.dir()), 0o700);
        assert_eq!(
            fs::read_to_string(dir.join("key.pem")).ok(),
            Some(pair.key.clone())
        );
        let meta = fs::read_to_string(dir.join("meta.json")).unwrap_or_default();
        assert!(meta.contains("\"source\": \"files\""), "{meta}");
        assert!(!meta.contains("PRIVATE"), "{meta}");

        assert_eq!(info.issuer.as_deref(), Some("wharf test"));
        assert_eq!(store.list().expect("list"), vec![info.clone()]);
        assert_eq!(info.host, "shop.example.com");
        assert_eq!(info.source, CertSource::Files);
        assert!(info.not_after.is_some_and(|t| t > 1_700_000_000));
        assert_eq!(info.last_error, None);
        assert!(store.load("shop.example.com").expect("load").is_some());
    }

    #[test]
    fn bad_input_changes_nothing() {
        let (_tmp, store) = store();
        let good = testutil::self_signed(&["shop.example.com"]);
        let other = testutil::self_signed(&["shop.example.com"]);
        let wrong_host = testutil::self_signed(&["blog.example.com"]);
        store
            .install(
                "shop.example.com",
                good.cert.as_bytes(),
                good.key.as_bytes(),
                CertSource::Files,
            )
            .expect("install");
        let dir = store.host_dir("shop.example.com").expect("dir");
        let before: Vec<_> = ["cert.pem", "key.pem", "meta.json"]
            .iter()
            .map(|f| fs::read(dir.join(f)).ok())
            .collect();

        let attempts: [(&[u8], &[u8]); 4] = [
            (good.cert.as_bytes(), other.key.as_bytes()),
            (wrong_host.cert.as_bytes(), wrong_host.key.as_bytes()),
            (b"garbage", good.key.as_bytes()),
            (good.cert.as_bytes(), b"garbage"),
        ];
        for (chain, key) in attempts {
            let result = store.install("shop.example.com", chain, key, CertSource::Acme);
            assert!(result.is_err(), "{result:?}");
        }
        let after: Vec<_> = ["cert.pem", "key.pem", "meta.json"]
            .iter()
            .map(|f| fs::read(dir.join(f)).ok())
            .collect();
        assert_eq!(before, after);
        assert_eq!(files(&dir), ["cert.pem", "key.pem", "meta.json"]);

        // A refused first install leaves no directory behind.
        let err = store.install(
            "blog.example.com",
            good.cert.as_bytes(),
            good.key.as_bytes(),
            CertSource::Files,
        );
        assert!(matches!(err, Err(TlsError::WrongHost { .. })), "{err:?}");
        assert_eq!(store.hosts().expect("hosts"), ["shop.example.com"]);
    }

    #[test]
    fn path_escaping_hosts_are_refused_everywhere() {
        let (tmp, store) = store();
        let pair = testutil::self_signed(&["shop.example.com"]);
        for host in ["..", "../x", "a/b", "/etc", "", ".", "a\0b"] {
            let install = store.install(
                host,
                pair.cert.as_bytes(),
                pair.key.as_bytes(),
                CertSource::Files,
            );
            assert!(
                matches!(install, Err(TlsError::InvalidHost { .. })),
                "{install:?}"
            );
            assert!(matches!(
                store.remove(host),
                Err(TlsError::InvalidHost { .. })
            ));
            assert!(matches!(store.get(host), Err(TlsError::InvalidHost { .. })));
            assert!(matches!(
                store.write_meta(host, &CertMeta::new(CertSource::Acme)),
                Err(TlsError::InvalidHost { .. })
            ));
        }
        assert_eq!(files(tmp.path()), ["tls"]);
        assert_eq!(files(&store.dir().join("certs")), Vec::<String>::new());
    }

    #[test]
    fn remove_forgets_a_host() {
        let (_tmp, store) = store();
        let pair = testutil::self_signed(&["shop.example.com"]);
        store
            .install(
                "shop.example.com",
                pair.cert.as_bytes(),
                pair.key.as_bytes(),
                CertSource::Files,
            )
            .expect("install");
        assert_eq!(store.remove("shop.example.com").ok(), Some(true));
        assert_eq!(store.remove("shop.example.com").ok(), Some(false));
        assert_eq!(store.list().expect("list"), vec![]);
    }

    #[test]
    fn the_account_file_is_0600_and_per_directory_url() {
        let (_tmp, store) = store();
        let staging = "https://acme-staging-v02.api.letsencrypt.org/directory";
        let production = "https://acme-v02.api.letsencrypt.org/directory";
        assert_ne!(store.account_path(staging), store.account_path(production));
        store
            .write_account(staging, b"{\"id\":\"x\"}")
            .expect("write account");
        let path = store.account_path(staging);
        assert_eq!(mode(&path), 0o600);
        assert!(
            path.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("account-"))
        );
        assert_eq!(
            store.read_account(staging).expect("read"),
            Some(b"{\"id\":\"x\"}".to_vec())
        );
        assert_eq!(store.read_account(production).expect("read"), None);
        store.remove_account(staging).expect("remove");
        assert_eq!(store.read_account(staging).expect("read"), None);
    }

    #[test]
    fn unreadable_stored_files_are_listed_with_the_reason() {
        let (_tmp, store) = store();
        let pair = testutil::self_signed(&["shop.example.com"]);
        store
            .install(
                "shop.example.com",
                pair.cert.as_bytes(),
                pair.key.as_bytes(),
                CertSource::Acme,
            )
            .expect("install");
        let dir = store.host_dir("shop.example.com").expect("dir");
        fs::write(dir.join("cert.pem"), "not a certificate").expect("corrupt");
        let infos = store.list().expect("list");
        assert_eq!(infos.len(), 1);
        assert_eq!(infos[0].not_after, None);
        let error = infos[0].last_error.clone().unwrap_or_default();
        assert!(error.contains("cert.pem"), "{error}");
        assert!(store.load("shop.example.com").is_err());

        fs::write(dir.join("meta.json"), "{").expect("corrupt");
        let infos = store.list().expect("list");
        assert!(infos[0].last_error.is_some());
    }

    #[test]
    fn meta_round_trips_and_a_meta_only_host_is_listed() {
        let (_tmp, store) = store();
        let meta = CertMeta {
            source: CertSource::Acme,
            last_error: Some("the ACME server could not validate x".to_owned()),
            last_attempt: Some(10),
            next_attempt: Some(70),
            failures: 1,
            installed: None,
        };
        store.write_meta("new.example.com", &meta).expect("write");
        assert_eq!(store.meta("new.example.com").expect("read"), Some(meta));
        let infos = store.list().expect("list");
        assert_eq!(infos.len(), 1);
        assert_eq!(infos[0].source, CertSource::Acme);
        assert_eq!(infos[0].not_after, None);
        assert_eq!(infos[0].next_attempt, Some(70));
        assert!(store.load("new.example.com").expect("load").is_none());
    }
}
