//! The [`Manager`]: the store, the resolver and the challenges together,
//! certificates from files or ordered over ACME in the background, and the
//! renewal loop.
//!
//! At most one order per host runs at a time. A failed order records its
//! error in `meta.json` and is retried after a backoff
//! ([`schedule::backoff`]); nothing an order meets can stop the loop.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use instant_acme::{Account, AccountBuilder, AccountCredentials, NewAccount};
use rustls::ClientConfig;
use tokio::task::AbortHandle;

use crate::acme::{self, OrderError};
use crate::clock::{Clock, SystemClock, unix_seconds};
use crate::store::{CertInfo, CertMeta, CertSource, CertStore};
use crate::{Challenges, Resolver, TlsError, host, schedule};

/// How long one order may take in all before it counts as failed.
const ORDER_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// The shortest interval between renewal checks.
const MIN_CHECK_EVERY: Duration = Duration::from_millis(100);

/// Where and how to order certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeSettings {
    /// The ACME directory, e.g. `https://acme-v02.api.letsencrypt.org/directory`.
    pub directory_url: String,
    /// Sent to the ACME server as `mailto:` contact of the account.
    pub contact_email: Option<String>,
    /// PEM CA files the ACME server's own HTTPS certificate chains to (a
    /// test CA such as Pebble's). When set, these are the only roots
    /// trusted for the ACME server; when empty, the system's are.
    pub extra_roots: Vec<PathBuf>,
    /// Renew when a certificate expires within this (default 30 days).
    pub renew_before: Duration,
    /// How often the renewal loop looks (default 1 h).
    pub check_every: Duration,
}

impl AcmeSettings {
    /// The default renewal margin.
    pub const DEFAULT_RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 60 * 60);
    /// The default check interval.
    pub const DEFAULT_CHECK_EVERY: Duration = Duration::from_secs(60 * 60);

    /// Settings for `directory_url` with the defaults.
    pub fn new(directory_url: impl Into<String>) -> Self {
        Self {
            directory_url: directory_url.into(),
            contact_email: None,
            extra_roots: Vec::new(),
            renew_before: Self::DEFAULT_RENEW_BEFORE,
            check_every: Self::DEFAULT_CHECK_EVERY,
        }
    }
}

/// Where a host wanting an ACME certificate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcmeStatus {
    /// A valid certificate from ACME, not due for renewal, is being served.
    Ready,
    /// An order is running, or waits for its backoff after a failure (see
    /// [`CertInfo::last_error`]).
    Ordering,
}

/// wharf's certificates: from files or ACME, served by SNI, renewed.
pub struct Manager {
    store: CertStore,
    resolver: Arc<Resolver>,
    challenges: Arc<Challenges>,
    acme: Option<AcmeSettings>,
    /// The HTTPS client configuration for `extra_roots`, when given.
    acme_tls: Option<Arc<ClientConfig>>,
    clock: Arc<dyn Clock>,
    /// Orders in flight, by host: (order id, its task).
    orders: Mutex<HashMap<String, (u64, AbortHandle)>>,
    next_order: AtomicU64,
    account: tokio::sync::Mutex<Option<Account>>,
}

impl fmt::Debug for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manager")
            .field("dir", &self.store.dir())
            .field("acme", &self.acme)
            .field("resolver", &self.resolver)
            .finish_non_exhaustive()
    }
}

impl Manager {
    /// A manager over `store`, ordering from `acme` when given, on the
    /// system clock. Loads every stored certificate; one that does not load
    /// is logged and left out (see [`Manager::certs`]).
    pub fn new(store: CertStore, acme: Option<AcmeSettings>) -> Result<Arc<Self>, TlsError> {
        Self::with_clock(store, acme, Arc::new(SystemClock))
    }

    /// [`Manager::new`] with the clock renewal and backoff decisions read.
    pub fn with_clock(
        store: CertStore,
        acme: Option<AcmeSettings>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, TlsError> {
        let mut acme_tls = None;
        if let Some(settings) = &acme {
            acme::check_directory_url(&settings.directory_url)?;
            if !settings.extra_roots.is_empty() {
                acme_tls = Some(acme::client_config(&settings.extra_roots)?);
            }
        }
        let (resolver, errors) = Resolver::load(&store);
        for (host, err) in errors {
            tracing::warn!(host, "{err}");
        }
        Ok(Arc::new(Self {
            store,
            resolver: Arc::new(resolver),
            challenges: Arc::new(Challenges::new()),
            acme,
            acme_tls,
            clock,
            orders: Mutex::new(HashMap::new()),
            next_order: AtomicU64::new(1),
            account: tokio::sync::Mutex::new(None),
        }))
    }

    /// The resolver to put in the proxy's `rustls::ServerConfig`.
    pub fn resolver(&self) -> Arc<Resolver> {
        Arc::clone(&self.resolver)
    }

    /// The HTTP-01 answers for the proxy's plain listener.
    pub fn challenges(&self) -> Arc<Challenges> {
        Arc::clone(&self.challenges)
    }

    /// The certificate store.
    pub fn store(&self) -> &CertStore {
        &self.store
    }

    /// What is known about every host's certificate, sorted by host.
    pub fn certs(&self) -> Result<Vec<CertInfo>, TlsError> {
        self.store.list()
    }

    /// Whether an order for `host` is running.
    pub fn is_ordering(&self, host: &str) -> bool {
        self.orders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(host)
    }

    /// Serves `host` with the certificate chain and key in these files
    /// (source `files`), after checking them as [`CertStore::install`]
    /// does. An ACME order running for `host` is cancelled.
    pub fn want_files(
        &self,
        host: &str,
        cert_path: &Path,
        key_path: &Path,
    ) -> Result<CertInfo, TlsError> {
        host::validate_host(host)?;
        let read = |what, path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::ReadFile {
                host: host.to_owned(),
                what,
                path: path.to_owned(),
                source,
            })
        };
        let chain = read("certificate", cert_path)?;
        let key = read("key", key_path)?;
        self.cancel_order(host);
        let info = self.store.install(host, &chain, &key, CertSource::Files)?;
        self.reload();
        Ok(info)
    }

    /// Serves `host` with a certificate from the ACME server. Returns at
    /// once: `Ready` when a valid ACME certificate not due for renewal is
    /// served, else `Ordering`, having started an order in the background
    /// unless one is running or a failed one waits for its backoff (the
    /// renewal loop retries it). Must be called within a tokio runtime.
    pub fn want_acme(self: &Arc<Self>, host: &str) -> Result<AcmeStatus, TlsError> {
        host::validate_host(host)?;
        if host::is_wildcard(host) {
            return Err(TlsError::WildcardAcme {
                host: host.to_owned(),
            });
        }
        let Some(settings) = &self.acme else {
            return Err(TlsError::AcmeNotConfigured {
                host: host.to_owned(),
            });
        };
        let now = unix_seconds(self.clock.now());
        let meta = match self.store.meta(host) {
            Ok(Some(meta)) if meta.source == CertSource::Acme => meta,
            Ok(previous) => {
                // From files (or nothing) to ACME: the stored certificate,
                // if any, serves until the ordered one replaces it.
                let meta = CertMeta {
                    installed: previous.and_then(|m| m.installed),
                    ..CertMeta::new(CertSource::Acme)
                };
                self.store.write_meta(host, &meta)?;
                meta
            }
            Err(TlsError::Corrupt { .. }) => {
                let meta = CertMeta::new(CertSource::Acme);
                self.store.write_meta(host, &meta)?;
                meta
            }
            Err(err) => return Err(err),
        };
        let not_after = self.acme_not_after(host, &meta);
        if not_after.is_some_and(|t| !schedule::renewal_due(t, now, settings.renew_before)) {
            return Ok(AcmeStatus::Ready);
        }
        if schedule::should_order(
            now,
            not_after,
            meta.failures,
            meta.next_attempt,
            settings.renew_before,
        ) {
            self.start_order(host)?;
        }
        Ok(AcmeStatus::Ordering)
    }

    /// Stops serving `host` and forgets its files; cancels its order.
    /// `Ok(false)` when there was nothing to forget.
    pub fn remove(&self, host: &str) -> Result<bool, TlsError> {
        self.cancel_order(host);
        let removed = self.store.remove(host)?;
        self.reload();
        Ok(removed)
    }

    /// The renewal loop: checks at once, then every `check_every`, until
    /// `shutdown` completes; then cancels the orders in flight. Without
    /// ACME settings it only waits for `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        let Some(settings) = &self.acme else {
            shutdown.await;
            return;
        };
        let every = settings.check_every.max(MIN_CHECK_EVERY);
        tokio::pin!(shutdown);
        loop {
            self.check();
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(every) => {}
            }
        }
        let orders: Vec<_> = self
            .orders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .collect();
        for (_, (_, task)) in orders {
            task.abort();
        }
    }

    /// One pass of the renewal loop: starts an order for every ACME host
    /// whose certificate is missing or due, or whose failed order's backoff
    /// has passed ([`schedule::should_order`]). Returns the hosts it
    /// started orders for.
    pub fn check(self: &Arc<Self>) -> Vec<String> {
        let Some(settings) = &self.acme else {
            return Vec::new();
        };
        let hosts = match self.store.hosts() {
            Ok(hosts) => hosts,
            Err(err) => {
                tracing::warn!("renewal check: {err}");
                return Vec::new();
            }
        };
        let now = unix_seconds(self.clock.now());
        let mut started = Vec::new();
        for host in hosts {
            let meta = match self.store.meta(&host) {
                Ok(Some(meta)) if meta.source == CertSource::Acme => meta,
                Ok(_) => continue,
                Err(err) => {
                    tracing::warn!(host, "renewal check: {err}");
                    continue;
                }
            };
            if host::is_wildcard(&host) || self.is_ordering(&host) {
                continue;
            }
            let not_after = self.acme_not_after(&host, &meta);
            if !schedule::should_order(
                now,
                not_after,
                meta.failures,
                meta.next_attempt,
                settings.renew_before,
            ) {
                continue;
            }
            match self.start_order(&host) {
                Ok(true) => started.push(host),
                Ok(false) => {}
                Err(err) => tracing::warn!(host, "renewal check: {err}"),
            }
        }
        started
    }

    /// The expiry of `host`'s certificate when it came from ACME and loaded.
    fn acme_not_after(&self, host: &str, meta: &CertMeta) -> Option<i64> {
        match meta.installed {
            Some(CertSource::Acme) => self.resolver.not_after(host),
            _ => None,
        }
    }

    fn reload(&self) {
        for (host, err) in self.resolver.reload(&self.store) {
            tracing::warn!(host, "{err}");
        }
    }

    fn cancel_order(&self, host: &str) {
        let order = self
            .orders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(host);
        if let Some((_, task)) = order {
            task.abort();
        }
    }

    /// Starts an order for `host` unless one is running; `Ok(false)` then.
    fn start_order(self: &Arc<Self>, host: &str) -> Result<bool, TlsError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| TlsError::NoRuntime {
            host: host.to_owned(),
        })?;
        let mut orders = self.orders.lock().unwrap_or_else(PoisonError::into_inner);
        if orders.contains_key(host) {
            return Ok(false);
        }
        let id = self.next_order.fetch_add(1, Ordering::Relaxed);
        let guard = InFlight {
            manager: Arc::clone(self),
            host: host.to_owned(),
            id,
        };
        // The task cannot remove its entry before it is inserted: that
        // needs the lock held here.
        let task = runtime.spawn(async move {
            guard.manager.order(&guard.host).await;
            drop(guard);
        });
        orders.insert(host.to_owned(), (id, task.abort_handle()));
        Ok(true)
    }

    /// One order for `host`, start to end; records the outcome.
    async fn order(&self, host: &str) {
        let Some(settings) = &self.acme else {
            return;
        };
        let started = unix_seconds(self.clock.now());
        let mut meta = match self.store.meta(host) {
            Ok(Some(meta)) if meta.source == CertSource::Acme => meta,
            _ => CertMeta::new(CertSource::Acme),
        };
        meta.last_attempt = Some(started);
        if let Err(err) = self.store.write_meta(host, &meta) {
            tracing::warn!(host, "{err}");
        }
        tracing::info!(host, directory = %settings.directory_url, "ordering a certificate");

        let outcome = match tokio::time::timeout(ORDER_TIMEOUT, self.order_once(host)).await {
            Ok(Ok((chain, key))) => self
                .store
                .install(host, chain.as_bytes(), key.as_bytes(), CertSource::Acme)
                .map_err(|err| {
                    format!(
                        "the certificate {} issued for {host} was refused: {err}",
                        settings.directory_url
                    )
                }),
            Ok(Err(message)) => Err(message),
            Err(_) => Err(format!(
                "ordering a certificate for {host} from {} took longer than {} minutes; wharf tries again later",
                settings.directory_url,
                ORDER_TIMEOUT.as_secs() / 60
            )),
        };
        match outcome {
            Ok(info) => {
                self.reload();
                tracing::info!(
                    host,
                    serial = info.serial.as_deref().unwrap_or(""),
                    not_after = info.not_after.unwrap_or(0),
                    "installed a certificate from ACME"
                );
            }
            Err(message) => {
                let now = unix_seconds(self.clock.now());
                meta.failures = meta.failures.saturating_add(1);
                meta.next_attempt = Some(schedule::next_attempt(now, meta.failures));
                meta.last_error = Some(message.clone());
                tracing::warn!(
                    host,
                    failures = meta.failures,
                    retry_in_seconds = schedule::backoff(meta.failures).as_secs(),
                    "{message}"
                );
                if let Err(err) = self.store.write_meta(host, &meta) {
                    tracing::warn!(host, "{err}");
                }
            }
        }
    }

    /// Gets the account, orders, and once recreates an account the server
    /// no longer knows. The error is the message for `last_error`.
    async fn order_once(&self, host: &str) -> Result<(String, String), String> {
        let Some(settings) = &self.acme else {
            return Err(format!("no ACME directory is configured for {host}"));
        };
        let url = &settings.directory_url;
        let mut retried = false;
        loop {
            let account = self.account().await?;
            match acme::order(&account, host, &self.challenges).await {
                Ok(issued) => return Ok(issued),
                Err(OrderError::AccountGone(detail)) if !retried => {
                    tracing::warn!(directory = %url, "the ACME server does not know wharf's account ({detail}); creating a new one");
                    *self.account.lock().await = None;
                    self.store.remove_account(url).map_err(|e| e.to_string())?;
                    retried = true;
                }
                Err(OrderError::AccountGone(detail)) => {
                    return Err(format!(
                        "the ACME server at {url} refused wharf's new account for {host}: {detail}; check the ACME settings"
                    ));
                }
                Err(OrderError::Validation(detail)) => {
                    return Err(format!(
                        "the ACME server at {url} could not validate {host}: {detail}; check that {host} resolves to this server and that port 80 reaches wharf"
                    ));
                }
                Err(OrderError::Other(detail)) => {
                    return Err(format!(
                        "ordering a certificate for {host} from {url} failed: {detail}; wharf tries again later"
                    ));
                }
            }
        }
    }

    /// instant-acme's account builder: with the `extra_roots` client, else
    /// its default client trusting the system's roots.
    fn account_builder(&self) -> Result<AccountBuilder, instant_acme::Error> {
        if let Some(config) = &self.acme_tls {
            let client = acme::RootsClient::new(Arc::clone(config));
            return Ok(Account::builder_with_http(Box::new(client)));
        }
        // The default client asks rustls for the process-wide provider,
        // which panics when none can be chosen; make it ring (the
        // workspace's) unless the process already chose one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Account::builder()
    }

    /// The ACME account: in memory, else restored from its file, else
    /// created on the server and saved (0600).
    async fn account(&self) -> Result<Account, String> {
        let Some(settings) = &self.acme else {
            return Err("no ACME directory is configured".to_owned());
        };
        let url = &settings.directory_url;
        let mut slot = self.account.lock().await;
        if let Some(account) = slot.as_ref() {
            return Ok(account.clone());
        }
        let failed = |what: &str, detail: String| {
            format!(
                "could not {what} the ACME account at {url}: {detail}; check the ACME directory URL and that this server can reach it"
            )
        };
        let builder = self
            .account_builder()
            .map_err(|err| failed("set up", acme::describe(&err)))?;
        let saved = self
            .store
            .read_account(url)
            .map_err(|err| err.to_string())?;
        let account = match saved {
            Some(json) => {
                let credentials = saved_credentials(&json, url).map_err(|detail| {
                    TlsError::Corrupt {
                        path: self.store.account_path(url),
                        detail,
                    }
                    .to_string()
                })?;
                builder
                    .from_credentials(credentials)
                    .await
                    .map_err(|err| failed("restore", acme::describe(&err)))?
            }
            None => {
                let contact = settings
                    .contact_email
                    .as_ref()
                    .map(|email| format!("mailto:{email}"));
                let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
                let (account, credentials) = builder
                    .create(
                        &NewAccount {
                            contact: &contacts,
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        url.clone(),
                        None,
                    )
                    .await
                    .map_err(|err| failed("create", acme::describe(&err)))?;
                let json = serde_json::to_vec(&credentials)
                    .map_err(|err| failed("save", err.to_string()))?;
                self.store
                    .write_account(url, &json)
                    .map_err(|err| err.to_string())?;
                tracing::info!(directory = %url, id = account.id(), "created an ACME account");
                account
            }
        };
        *slot = Some(account.clone());
        Ok(account)
    }
}

/// Reads saved account credentials, checking they belong to `url` (the
/// client would fetch whatever directory they name, and cannot take a
/// malformed one).
fn saved_credentials(json: &[u8], url: &str) -> Result<AccountCredentials, String> {
    let value: serde_json::Value = serde_json::from_slice(json).map_err(|err| err.to_string())?;
    match value.get("directory").and_then(serde_json::Value::as_str) {
        Some(directory) if directory == url => {}
        Some(directory) => {
            return Err(format!(
                "it is the account of the ACME directory {directory}, not of {url}"
            ));
        }
        None => return Err("it names no ACME directory".to_owned()),
    }
    serde_json::from_value(value).map_err(|err| err.to_string())
}

/// Marks an order in flight; dropping it (the order ended, failed, was
/// cancelled or panicked) frees the host for the next order.
struct InFlight {
    manager: Arc<Manager>,
    host: String,
    id: u64,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut orders = self
            .manager
            .orders
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if orders.get(&self.host).is_some_and(|(id, _)| *id == self.id) {
            orders.remove(&self.host);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;
    use crate::testutil;
    use std::time::UNIX_EPOCH;

    struct Fixture {
        tmp: tempfile::TempDir,
        clock: Arc<ManualClock>,
        manager: Arc<Manager>,
    }

    /// A manager whose ACME server is a closed port on loopback: every
    /// order fails at once, as it would with the server down.
    fn fixture(check_every: Duration) -> Fixture {
        let tmp = tempfile::tempdir().expect("temp dir");
        let ca = testutil::self_signed(&["127.0.0.1"]);
        let ca_path = tmp.path().join("ca.pem");
        std::fs::write(&ca_path, ca.cert).expect("write ca");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let settings = AcmeSettings {
            extra_roots: vec![ca_path],
            check_every,
            ..AcmeSettings::new(format!("https://127.0.0.1:{port}/dir"))
        };
        let clock = Arc::new(ManualClock::new(
            UNIX_EPOCH + Duration::from_secs(2_000_000_000),
        ));
        let store = CertStore::open(tmp.path().join("tls")).expect("store");
        let manager =
            Manager::with_clock(store, Some(settings), Arc::clone(&clock) as Arc<dyn Clock>)
                .expect("manager");
        Fixture {
            tmp,
            clock,
            manager,
        }
    }

    fn now(clock: &ManualClock) -> i64 {
        unix_seconds(clock.now())
    }

    async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        for _ in 0..500 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("timed out waiting for {what}");
    }

    fn meta(manager: &Manager, host: &str) -> CertMeta {
        manager
            .store()
            .meta(host)
            .ok()
            .flatten()
            .expect("meta.json")
    }

    #[tokio::test]
    async fn a_failed_order_records_its_error_and_backs_off() {
        let f = fixture(AcmeSettings::DEFAULT_CHECK_EVERY);
        let host = "shop.example.com";
        assert_eq!(f.manager.want_acme(host).ok(), Some(AcmeStatus::Ordering));
        wait_for("the first failure", || {
            !f.manager.is_ordering(host) && meta(&f.manager, host).failures == 1
        })
        .await;
        let m = meta(&f.manager, host);
        let error = m.last_error.clone().unwrap_or_default();
        assert!(
            error.starts_with("could not create the ACME account at https://127.0.0.1:"),
            "{error}"
        );
        assert!(error.contains("could not connect"), "{error}");
        assert_eq!(m.last_attempt, Some(now(&f.clock)));
        assert_eq!(m.next_attempt, Some(now(&f.clock) + 60));

        // Within the backoff nothing new starts.
        assert_eq!(f.manager.want_acme(host).ok(), Some(AcmeStatus::Ordering));
        assert!(!f.manager.is_ordering(host));
        assert_eq!(f.manager.check(), Vec::<String>::new());

        // After it, the check tries again and the wait doubles.
        f.clock.advance(Duration::from_secs(60));
        assert_eq!(f.manager.check(), vec![host.to_owned()]);
        wait_for("the second failure", || {
            !f.manager.is_ordering(host) && meta(&f.manager, host).failures == 2
        })
        .await;
        assert_eq!(
            meta(&f.manager, host).next_attempt,
            Some(now(&f.clock) + 120)
        );
        let certs = f.manager.certs().expect("certs");
        assert_eq!(certs.len(), 1);
        assert_eq!(certs[0].source, CertSource::Acme);
        assert!(certs[0].last_error.is_some());
        assert!(f.manager.challenges().is_empty());
        assert!(!f.manager.resolver().has(host));
    }

    #[tokio::test]
    async fn the_loop_keeps_retrying_and_stops_on_shutdown() {
        let f = fixture(Duration::from_millis(100));
        let host = "shop.example.com";
        f.manager
            .store()
            .write_meta(host, &CertMeta::new(CertSource::Acme))
            .expect("meta");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn(Arc::clone(&f.manager).run(async {
            let _ = stopped.await;
        }));
        for failures in 1..=3 {
            wait_for("a failure", || {
                !f.manager.is_ordering(host) && meta(&f.manager, host).failures == failures
            })
            .await;
            assert!(!run.is_finished());
            f.clock.advance(schedule::backoff(failures));
        }
        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(5), run)
            .await
            .expect("the loop stops on shutdown")
            .expect("the loop did not panic");
        assert!(!f.manager.is_ordering(host));
    }

    #[tokio::test]
    async fn acme_certificates_are_ready_until_due_then_reordered() {
        let f = fixture(AcmeSettings::DEFAULT_CHECK_EVERY);
        let host = "shop.example.com";
        let pair = testutil::self_signed(&[host]);
        let info = f
            .manager
            .store()
            .install(
                host,
                pair.cert.as_bytes(),
                pair.key.as_bytes(),
                CertSource::Acme,
            )
            .expect("install");
        let files = testutil::self_signed(&["blog.example.com"]);
        let cert = f.tmp.path().join("blog.pem");
        let key = f.tmp.path().join("blog.key");
        std::fs::write(&cert, files.cert).expect("write");
        std::fs::write(&key, files.key).expect("write");
        f.manager
            .want_files("blog.example.com", &cert, &key)
            .expect("files");

        // Moving a files host to ACME orders, while its certificate serves.
        assert_eq!(
            f.manager.want_acme("blog.example.com").ok(),
            Some(AcmeStatus::Ordering)
        );
        assert!(f.manager.resolver().has("blog.example.com"));
        wait_for("the failed order", || {
            !f.manager.is_ordering("blog.example.com")
                && meta(&f.manager, "blog.example.com").failures == 1
        })
        .await;
        let blog = meta(&f.manager, "blog.example.com");
        assert_eq!(blog.source, CertSource::Acme);
        assert_eq!(blog.installed, Some(CertSource::Files));
        f.manager
            .want_files("blog.example.com", &cert, &key)
            .expect("files again");
        assert_eq!(
            meta(&f.manager, "blog.example.com").installed,
            Some(CertSource::Files)
        );

        // Reloading is the manager's job; a fresh one loads what is on disk.
        let manager = Manager::with_clock(
            f.manager.store().clone(),
            f.manager.acme.clone(),
            Arc::clone(&f.clock) as Arc<dyn Clock>,
        )
        .expect("manager");
        assert_eq!(manager.want_acme(host).ok(), Some(AcmeStatus::Ready));
        assert_eq!(manager.check(), Vec::<String>::new());

        let not_after = info.not_after.expect("not_after");
        let due = not_after - 29 * 24 * 60 * 60;
        f.clock
            .set(UNIX_EPOCH + Duration::from_secs(u64::try_from(due).expect("positive")));
        assert_eq!(manager.check(), vec![host.to_owned()]);
        assert_eq!(manager.want_acme(host).ok(), Some(AcmeStatus::Ordering));
        wait_for("the failed renewal", || {
            !manager.is_ordering(host) && meta(&manager, host).failures == 1
        })
        .await;
        // The old certificate keeps serving; files certificates are never renewed.
        assert!(manager.resolver().has(host));
        assert_eq!(meta(&manager, "blog.example.com").source, CertSource::Files);
        assert!(!manager.is_ordering("blog.example.com"));
    }

    #[tokio::test]
    async fn the_system_roots_client_is_built_without_panicking() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let store = CertStore::open(tmp.path()).expect("store");
        let settings = AcmeSettings::new("https://acme-v02.api.letsencrypt.org/directory");
        let manager = Manager::new(store, Some(settings)).expect("manager");
        // Ok with system roots, an error without; never a panic.
        let _ = manager.account_builder();
    }

    #[test]
    fn saved_credentials_must_belong_to_the_directory() {
        let url = "https://acme.example/dir";
        let key = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgJVWC_QzOTCS5vtsJp2IG-UDc8cdDfeoKtxSZxaznM-mhRANCAAQenCPoGgPFTdPJ7VLLKt56RxPlYT1wNXnHc54PEyBg3LxKaH0-sJkX0mL8LyPEdsfL_Oz4TxHkWLJGrXVtNhfH";
        let good = format!(
            r#"{{"id":"https://acme.example/acct/1","key_pkcs8":"{key}","directory":"{url}"}}"#
        );
        assert!(saved_credentials(good.as_bytes(), url).is_ok());
        let other = good.replace(url, "not a url");
        let err = saved_credentials(other.as_bytes(), url).err();
        assert_eq!(
            err.as_deref(),
            Some(
                "it is the account of the ACME directory not a url, not of https://acme.example/dir"
            )
        );
        for bad in ["", "{", "[]", r#"{"id":1}"#] {
            assert!(saved_credentials(bad.as_bytes(), url).is_err(), "{bad}");
        }
    }

    #[test]
    fn misuse_is_an_error_not_a_panic() {
        let f = fixture(AcmeSettings::DEFAULT_CHECK_EVERY);
        assert!(matches!(
            f.manager.want_acme("shop.example.com"),
            Err(TlsError::NoRuntime { .. })
        ));
        assert!(matches!(
            f.manager.want_acme("*.example.com"),
            Err(TlsError::WildcardAcme { .. })
        ));
        assert!(matches!(
            f.manager.want_acme("../x"),
            Err(TlsError::InvalidHost { .. })
        ));
        let missing = f.tmp.path().join("missing.pem");
        let err = f.manager.want_files("shop.example.com", &missing, &missing);
        let message = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.starts_with("could not read the certificate file ")
                && message.contains("missing.pem for shop.example.com: "),
            "{message}"
        );

        let store = CertStore::open(f.tmp.path().join("other")).expect("store");
        let without = Manager::new(store.clone(), None).expect("manager");
        assert!(matches!(
            without.want_acme("shop.example.com"),
            Err(TlsError::AcmeNotConfigured { .. })
        ));
        for url in ["http://acme.example/dir", "", "nonsense"] {
            let result = Manager::new(store.clone(), Some(AcmeSettings::new(url)));
            assert!(
                matches!(result, Err(TlsError::InvalidDirectoryUrl { .. })),
                "{url:?}"
            );
        }
        let mut settings = AcmeSettings::new("https://acme.example/dir");
        settings.extra_roots = vec![missing];
        assert!(matches!(
            Manager::new(store, Some(settings)),
            Err(TlsError::BadRoot { .. })
        ));
    }
}
