//! `wharf up DIR`: server, first deploy and log follower in one foreground
//! process; Ctrl-C drains and stops everything, the app's accessories too
//! (their containers and volumes are kept: the next `wharf up` starts them
//! again with their data). `wharf server` leaves accessories running.

use std::path::Path;

use anyhow::Result;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use wharf_config::AppConfig;
use wharf_deploy::{AccessoryAction, DeployRequest};
use wharf_runtime::Runtime;
use wharf_server::Server;

use super::server::{options, shutdown_signal};
use crate::cli::UpArgs;
use crate::output::{self, ProgressView};
use crate::{Exit, settings, telemetry};

pub async fn run(data: Option<&Path>, args: UpArgs) -> Result<()> {
    // Every config error at once, before anything starts.
    let config = AppConfig::load(&args.dir)?;
    let data_dir = settings::server_data_dir(data, Some(&args.dir));
    let _logs = telemetry::server_to_file(&data_dir)?;
    let server = Server::start(options(data_dir, &args.listen)).await?;
    let info = server.info().clone();
    settings::remember_server(&info.data_dir);
    output::note(&format!(
        "wharf server: proxy http://{} · metrics http://{}/metrics · server log {}",
        info.proxy,
        info.admin,
        info.data_dir.join("server.log").display()
    ));

    let engine = server.engine().clone();
    let mut logs = engine.runtime().log_lines();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let req = DeployRequest {
        source_dir: args.dir.clone(),
        env: args.env.into_iter().collect(),
        ..Default::default()
    };
    let deploy = tokio::spawn(async move { engine.deploy(req, Some(tx)).await });
    let mut view = ProgressView::default();
    let mut outcome = None;
    let interrupted = tokio::select! {
        _ = async {
            while let Some(p) = rx.recv().await {
                if let Some(o) = view.show(&p) {
                    outcome = Some(o);
                }
            }
        } => false,
        _ = shutdown_signal() => true,
    };
    if interrupted {
        deploy.abort();
        stop(server, &config, &args.dir).await;
        return Ok(());
    }
    let serving = server
        .engine()
        .store()
        .app(&config.name)
        .ok()
        .and_then(|a| a.current_release);
    match outcome {
        Some((true, _)) => {}
        Some((false, message)) if serving.is_none() => {
            stop(server, &config, &args.dir).await;
            return Err(Exit::Failed(message).into());
        }
        Some((false, message)) => {
            output::error(&format!("{message}\n(keeping the running release)"))
        }
        None => {}
    }
    if serving.is_some() {
        output::note(&format!(
            "{} is live at {}",
            config.name,
            url(&config, info.proxy)
        ));
    }
    output::note("following logs; Ctrl-C stops the app and the server");
    tokio::select! {
        _ = async {
            loop {
                match logs.recv().await {
                    Ok(l) if l.app == config.name => output::data(&format!("{} | {}", l.instance, l.line)),
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => break,
                }
            }
        } => {}
        _ = shutdown_signal() => {}
    }
    stop(server, &config, &args.dir).await;
    Ok(())
}

/// Drains and stops the app and the server, then the app's accessories
/// (after the app, which may use them until its last request).
async fn stop(server: Server, config: &AppConfig, dir: &Path) {
    output::note("stopping…");
    let engine = server.engine().clone();
    server.shutdown().await;
    for name in config.accessories.keys() {
        match engine
            .accessory(config, dir, name, AccessoryAction::Stop)
            .await
        {
            Ok(status) if status.state == "missing" => {}
            Ok(_) => output::note(&format!("stopped accessory {name} (its data is kept)")),
            Err(err) => output::error(&format!("could not stop accessory {name}: {err}")),
        }
    }
}

/// Where a person reaches the app: its first routed process.
fn url(config: &AppConfig, proxy: std::net::SocketAddr) -> String {
    let port = proxy.port();
    let route = config.http_processes().next().and_then(|p| p.http.clone());
    let host = route
        .as_ref()
        .and_then(|r| r.host.clone())
        .unwrap_or_else(|| {
            if proxy.ip().is_unspecified() {
                "127.0.0.1".to_owned()
            } else {
                proxy.ip().to_string()
            }
        });
    let path = route.map(|r| r.path_prefix).unwrap_or_else(|| "/".into());
    format!("http://{host}:{port}{path}")
}
