//! `wharf server`: the daemon, until SIGTERM or Ctrl-C.

use std::path::Path;

use anyhow::Result;
use wharf_server::{Server, ServerOptions};

use crate::cli::{ListenArgs, ServerArgs};
use crate::{settings, telemetry};

pub async fn run(data: Option<&Path>, args: ServerArgs) -> Result<()> {
    let _logs = telemetry::server_to_stderr();
    let server =
        Server::start(options(settings::server_data_dir(data, None), &args.listen)).await?;
    settings::remember_server(&server.info().data_dir);
    shutdown_signal().await;
    server.shutdown().await;
    Ok(())
}

pub(crate) fn options(data_dir: std::path::PathBuf, listen: &ListenArgs) -> ServerOptions {
    ServerOptions {
        data_dir,
        proxy_addr: listen.listen,
        admin_addr: listen.admin,
        proxy: wharf_proxy::ProxyConfig {
            access_log: !listen.no_access_log,
            ..Default::default()
        },
        log_max_bytes: 10 * 1024 * 1024,
        recovery_progress: None,
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
