//! The wharf daemon.
//!
//! [`Server::start`] wires the pieces: it locks the data directory (one
//! server per data dir), opens the store, binds the proxy, admin and API
//! listeners, creates the runtime, proxy and deploy engine, and serves at
//! once. Crash recovery's store half runs before anything answers (every
//! app to restore is marked `restoring`, its routes answering 503 with
//! `Retry-After`); the restores themselves run in the background, one task
//! per app, so neither the API nor another app waits for them.
//! [`Server::shutdown`] undoes it in order: no new API calls, the apps
//! drained and stopped, the proxy closed gracefully.
//!
//! The API is HTTP over a unix socket in the data dir: only users who can
//! open that file (mode 0600, owner only) can deploy.

use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use wharf_deploy::Engine;
use wharf_proxy::{Proxy, ProxyConfig};
use wharf_runtime::Runtime;
use wharf_runtime::dispatch::Runtimes;
use wharf_runtime::docker::{DockerRuntime, DockerRuntimeOptions};
use wharf_runtime::process::{ProcessRuntime, ProcessRuntimeOptions};
use wharf_store::Store;

pub mod api;
pub mod client;
mod cron;
pub mod hooks;
mod http;
mod jobs;
mod lock;
mod remote;
pub mod settings;
mod sources;
mod tasks;

pub use api::ServerInfo;

/// File names inside the data dir.
pub const SOCKET_FILE: &str = "wharf.sock";
pub const STORE_FILE: &str = "wharf.db";
pub const INFO_FILE: &str = "server.json";
/// The server's secret token (owner-only file). Today it unlocks the
/// proxy's `X-Wharf-Release` override; the control plane's API tokens come later.
pub const TOKEN_FILE: &str = "token";
/// Certificates and the ACME account, under the data dir.
pub const TLS_DIR: &str = "tls";

/// How a server is set up.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub data_dir: PathBuf,
    /// Proxy listen address (port 0 picks a free one).
    pub proxy_addr: SocketAddr,
    /// HTTPS listen address, if any.
    pub https_addr: Option<SocketAddr>,
    /// Admin listen address for `/metrics`.
    pub admin_addr: SocketAddr,
    /// Where to serve the API over https with tokens, if anywhere.
    pub api_addr: Option<SocketAddr>,
    /// Bytes of file content an uploaded source may hold.
    pub upload_limit: u64,
    /// How certificates are ordered.
    pub acme: settings::AcmeSettings,
    pub proxy: ProxyConfig,
    /// This server as a forge's users reach it (statuses link to it);
    /// default: the https API's address.
    pub public_url: Option<String>,
    /// The forge API's base URL, instead of the one guessed from a clone URL.
    pub forge_api: Option<String>,
    /// Instance and task log files rotate past this size.
    pub log_max_bytes: u64,
    /// Where the restores of a restart report their progress, per app
    /// (`wharf up` shows its app's); every step is logged either way.
    pub recovery_progress: Option<wharf_deploy::RecoveryTx>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("could not create the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "another wharf server is running on {data_dir}{}; stop it first, or give this one another --data directory",
        .pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    AlreadyRunning { data_dir: PathBuf, pid: Option<u32> },
    #[error(
        "could not listen on {what} {addr}: {source}; is another program using it? pass another address"
    )]
    Bind {
        what: &'static str,
        addr: String,
        source: std::io::Error,
    },
    #[error(
        "the API socket path {0} is too long for a unix socket (max 107 bytes); use a shorter --data directory"
    )]
    SocketPath(PathBuf),
    #[error(transparent)]
    Store(#[from] wharf_store::StoreError),
    #[error(transparent)]
    Runtime(#[from] wharf_runtime::RuntimeError),
    #[error(transparent)]
    Tls(#[from] wharf_tls::TlsError),
    #[error("crash recovery failed: {0}")]
    Recovery(#[from] wharf_deploy::DeployError),
    #[error("could not write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    engine: Arc<Engine>,
    info: ServerInfo,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// The background restores.
    recovering: JoinHandle<()>,
    _lock: lock::DataDirLock,
    /// The (app, release) pairs being restored in the background.
    pub restoring: Vec<(String, i64)>,
    recovery: watch::Receiver<Option<wharf_deploy::RecoveryReport>>,
}

impl Server {
    pub async fn start(opts: ServerOptions) -> Result<Server, ServerError> {
        std::fs::create_dir_all(&opts.data_dir).map_err(|source| ServerError::DataDir {
            path: opts.data_dir.clone(),
            source,
        })?;
        let data_dir =
            std::fs::canonicalize(&opts.data_dir).map_err(|source| ServerError::DataDir {
                path: opts.data_dir.clone(),
                source,
            })?;
        let lock = lock::DataDirLock::acquire(&data_dir)?;
        let store = Arc::new(Store::open(&data_dir.join(STORE_FILE))?);

        let bind = |what: &'static str, addr: SocketAddr| async move {
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| ServerError::Bind {
                    what,
                    addr: addr.to_string(),
                    source,
                })
        };
        let proxy_listener = bind("the proxy address", opts.proxy_addr).await?;
        let https_listener = match opts.https_addr {
            Some(addr) => Some(bind("the HTTPS address", addr).await?),
            None => None,
        };
        let admin_listener = bind("the admin address", opts.admin_addr).await?;
        let api_tls_listener = match opts.api_addr {
            Some(addr) => Some(bind("the API address", addr).await?),
            None => None,
        };
        let api_identity = match api_tls_listener {
            Some(_) => Some(wharf_tls::ApiIdentity::load_or_create(
                &data_dir.join(TLS_DIR),
            )?),
            None => None,
        };
        let socket = data_dir.join(SOCKET_FILE);
        if socket.as_os_str().len() > 107 {
            return Err(ServerError::SocketPath(socket));
        }
        // We hold the data dir lock, so a socket file here is a dead server's.
        let _ = std::fs::remove_file(&socket);
        let api_listener =
            tokio::net::UnixListener::bind(&socket).map_err(|source| ServerError::Bind {
                what: "the API socket",
                addr: socket.display().to_string(),
                source,
            })?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600)).map_err(
            |source| ServerError::Write {
                path: socket.clone(),
                source,
            },
        )?;

        let info = ServerInfo {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            data_dir: data_dir.clone(),
            proxy: local_addr(&proxy_listener),
            https: https_listener.as_ref().map(local_addr),
            admin: local_addr(&admin_listener),
            socket: socket.clone(),
            api: api_tls_listener.as_ref().map(local_addr),
            api_fingerprint: api_identity.as_ref().map(|i| i.fingerprint.clone()),
        };

        // Certificates: `<data>/tls` (keys and the ACME account mode 0600).
        let mut acme = wharf_tls::AcmeSettings::new(opts.acme.directory.clone());
        acme.contact_email = opts.acme.email.clone();
        acme.extra_roots = opts.acme.ca_roots.clone();
        let certs = wharf_tls::Manager::new(
            wharf_tls::CertStore::open(data_dir.join(TLS_DIR))?,
            Some(acme),
        )?;

        let mut proxy_config = opts.proxy.clone();
        proxy_config.override_token = Some(token(&data_dir)?);
        proxy_config.certs = Some(Arc::new(ProxyCerts(certs.clone())));
        proxy_config.https_port = info.https.map(|a| a.port());
        let mut registry = Registry::default();
        let process = Arc::new(ProcessRuntime::new(ProcessRuntimeOptions {
            data_dir: data_dir.clone(),
            log_max_bytes: opts.log_max_bytes,
        })?);
        // Connected when the first docker app needs it: a server with only
        // process apps runs without a Docker engine.
        let docker_options = DockerRuntimeOptions::new(data_dir.clone(), opts.log_max_bytes);
        let runtime = Arc::new(Runtimes::new(
            process,
            Box::new(move || {
                let options = docker_options.clone();
                Box::pin(async move {
                    let docker = DockerRuntime::connect(options).await?;
                    Ok(Arc::new(docker) as Arc<dyn Runtime>)
                })
            }),
        ));
        let proxy = Proxy::new(proxy_config, &mut registry);
        let engine = Engine::new(store, runtime, proxy.clone(), &mut registry);
        engine.set_certificates(wharf_deploy::Certificates {
            manager: certs.clone(),
            https: info.https.is_some(),
        });
        engine.set_pipelines(wharf_deploy::Pipelines {
            sources: data_dir.join(sources::SOURCES_DIR),
            forge_tokens: {
                let data_dir = data_dir.clone();
                Arc::new(move |app: &str| {
                    hooks::secrets::read(&data_dir, app, hooks::secrets::Kind::ForgeToken)
                        .ok()
                        .flatten()
                })
            },
            forge_api: opts.forge_api.clone(),
            public_url: opts
                .public_url
                .clone()
                .or_else(|| info.api.map(|a| format!("https://{a}"))),
        });
        let registry = Arc::new(registry);

        let (stop, stopped) = watch::channel(false);
        let until_stop = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let mut tasks = Vec::new();
        // The store half of recovery, before anything answers: open deploys
        // closed, every app to restore marked restoring (503 + Retry-After).
        // Jobs a dead runner held go back to the queue, to be resumed first.
        let plan = engine.prepare_recovery()?;
        let restoring = plan.restores();
        if let Some(listener) = https_listener {
            let (proxy, shutdown) = (proxy.clone(), until_stop(stopped.clone()));
            tasks.push(tokio::spawn(async move {
                if let Err(e) = proxy.serve_tls(listener, shutdown).await {
                    tracing::error!(error = %e, "HTTPS listener stopped");
                }
            }));
        }
        tasks.push(tokio::spawn({
            let shutdown = until_stop(stopped.clone());
            async move {
                if let Err(e) = proxy.serve(proxy_listener, shutdown).await {
                    tracing::error!(error = %e, "proxy stopped");
                }
            }
        }));
        // Renewals and retries of failed orders, in the background.
        tasks.push(tokio::spawn(certs.clone().run(until_stop(stopped.clone()))));

        let state = http::AppState {
            engine: engine.clone(),
            info: info.clone(),
            upload_limit: opts.upload_limit,
        };
        if let (Some(listener), Some(identity)) = (api_tls_listener, &api_identity) {
            let auth = remote::Auth::new(engine.store().clone());
            let router = http::api_router(state.clone()).layer(
                axum::middleware::from_fn_with_state(auth, remote::require_token),
            );
            let tls = identity.server_config(Some(certs.resolver()));
            let shutdown = until_stop(stopped.clone());
            tasks.push(tokio::spawn(remote::serve(listener, tls, router, shutdown)));
        }
        tasks.push(tokio::spawn({
            let shutdown = until_stop(stopped.clone());
            async move {
                if let Err(e) = axum::serve(api_listener, http::api_router(state))
                    .with_graceful_shutdown(shutdown)
                    .await
                {
                    tracing::error!(error = %e, "API server stopped");
                }
            }
        }));
        tasks.push(tokio::spawn({
            let shutdown = until_stop(stopped.clone());
            async move {
                if let Err(e) = axum::serve(admin_listener, http::admin_router(registry))
                    .with_graceful_shutdown(shutdown)
                    .await
                {
                    tracing::error!(error = %e, "admin server stopped");
                }
            }
        }));
        // The job runner: deploys and rollbacks, one per app at a time.
        tasks.push(tokio::spawn(engine.clone().run_jobs(stopped.clone())));
        // Cron: each app's entries, queued once per scheduled time.
        tasks.push(tokio::spawn(engine.clone().run_cron(stopped.clone())));
        // The restores (jobs; the runner starts once they are queued), in
        // the background while everything answers.
        let (recovered_tx, recovery) = watch::channel(None);
        let recovering = {
            let engine = engine.clone();
            let progress = opts.recovery_progress.clone();
            tokio::spawn(async move {
                let report = engine.recover(plan, progress).await;
                tracing::info!(?report, "recovered");
                let _ = recovered_tx.send(Some(report));
            })
        };
        let info_path = data_dir.join(INFO_FILE);
        let json = serde_json::to_vec_pretty(&info).unwrap_or_default();
        std::fs::write(&info_path, json).map_err(|source| ServerError::Write {
            path: info_path,
            source,
        })?;
        tracing::info!(proxy = %info.proxy, admin = %info.admin, socket = %info.socket.display(), "wharf server ready");
        Ok(Server {
            engine,
            info,
            stop,
            tasks,
            recovering,
            _lock: lock,
            restoring,
            recovery,
        })
    }

    pub fn info(&self) -> &ServerInfo {
        &self.info
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// What recovery did, once every restore has ended.
    pub async fn recovered(&self) -> wharf_deploy::RecoveryReport {
        let mut rx = self.recovery.clone();
        match rx.wait_for(Option::is_some).await {
            Ok(report) => report.clone().unwrap_or_default(),
            Err(_) => wharf_deploy::RecoveryReport::default(),
        }
    }

    /// Drains and stops every app, then closes the listeners.
    pub async fn shutdown(self) {
        tracing::info!("shutting down");
        // A restore still running is stopped where it stands (the store
        // keeps what to restore next time); then the apps, while the proxy
        // still serves their in-flight requests.
        self.recovering.abort();
        let _ = self.recovering.await;
        self.engine.shutdown().await;
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        let _ = std::fs::remove_file(&self.info.socket);
        let _ = std::fs::remove_file(self.info.data_dir.join(INFO_FILE));
        tracing::info!("stopped");
    }
}

/// The certificates as the proxy sees them.
#[derive(Debug)]
struct ProxyCerts(Arc<wharf_tls::Manager>);

impl wharf_proxy::Certs for ProxyCerts {
    fn resolver(&self) -> Arc<dyn rustls::server::ResolvesServerCert> {
        self.0.resolver()
    }
    fn has(&self, host: &str) -> bool {
        self.0.resolver().has(host)
    }
    fn challenge(&self, token: &str) -> Option<String> {
        self.0.challenges().answer(token)
    }
}

/// Reads `<data>/token`, creating it (32 random hex characters from the
/// kernel, mode 0600) on first start.
fn token(data_dir: &Path) -> Result<String, ServerError> {
    use std::io::{Read, Write};
    let path = data_dir.join(TOKEN_FILE);
    if let Ok(t) = std::fs::read_to_string(&path)
        && !t.trim().is_empty()
    {
        return Ok(t.trim().to_owned());
    }
    let write_err = |source| ServerError::Write {
        path: path.clone(),
        source,
    };
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(write_err)?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(write_err)?;
    file.write_all(token.as_bytes()).map_err(write_err)?;
    Ok(token)
}

fn local_addr(l: &tokio::net::TcpListener) -> SocketAddr {
    l.local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// Reads the `server.json` a running server wrote into `data_dir`.
pub fn read_info(data_dir: &Path) -> Option<ServerInfo> {
    let bytes = std::fs::read(data_dir.join(INFO_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}
