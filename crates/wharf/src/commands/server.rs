//! `wharf server`: the daemon, until SIGTERM or Ctrl-C.

use std::path::Path;

use anyhow::Result;
use wharf_server::{Server, ServerOptions};

use crate::cli::{ListenArgs, ServerArgs};
use crate::{settings, telemetry};

pub async fn run(data: Option<&Path>, args: ServerArgs) -> Result<()> {
    let _logs = telemetry::server_to_stderr();
    let server = Server::start(options(
        settings::server_data_dir(data, None),
        &args.listen,
    )?)
    .await?;
    settings::remember_server(&server.info().data_dir);
    announce_api(server.info());
    shutdown_signal().await;
    server.shutdown().await;
    Ok(())
}

/// The server's options: the settings in layers (command line >
/// environment > `<data>/server.toml` > defaults).
pub(crate) fn options(data_dir: std::path::PathBuf, listen: &ListenArgs) -> Result<ServerOptions> {
    let overrides = wharf_server::settings::Overrides {
        listen: listen.listen,
        https_listen: listen.https_listen,
        admin: listen.admin,
        api: listen.api,
        upload_limit_mb: listen.upload_limit_mb,
        no_access_log: listen.no_access_log,
        acme_directory: listen.acme_directory.clone(),
        acme_email: listen.acme_email.clone(),
        acme_ca_roots: listen.acme_ca_roots.clone(),
        trusted_proxies: listen.trusted_proxies.clone(),
        public_url: listen.public_url.clone(),
        forge_api: listen.forge_api.clone(),
    };
    let settings = wharf_server::settings::load(&data_dir, &overrides)
        .map_err(|e| crate::Exit::Usage(e.to_string()))?;
    Ok(ServerOptions {
        data_dir,
        proxy_addr: settings.listen,
        https_addr: settings.https_listen,
        admin_addr: settings.admin,
        api_addr: settings.api,
        upload_limit: settings.upload_limit,
        proxy: wharf_proxy::ProxyConfig {
            access_log: settings.access_log,
            trusted_proxies: settings.trusted_proxies,
            tunnel_idle_timeout: settings.tunnel_idle_timeout,
            ..Default::default()
        },
        acme: settings.acme,
        public_url: settings.public_url,
        forge_api: settings.forge_api,
        log_max_bytes: 10 * 1024 * 1024,
        recovery_progress: None,
    })
}

/// Says where the https API is and its certificate's fingerprint, for the
/// clients to compare with what they pin.
pub(crate) fn announce_api(info: &wharf_server::ServerInfo) {
    if let (Some(addr), Some(fp)) = (info.api, &info.api_fingerprint) {
        crate::output::note(&format!(
            "API on https://{addr} (tokens: `wharf token create`); certificate SHA-256 fingerprint {fp}"
        ));
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
