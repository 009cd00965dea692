//! `wharf up DIR`: server, deploy and log follower in one foreground
//! process; Ctrl-C drains and stops everything, the app's accessories too
//! (their containers and volumes are kept). `wharf server` leaves
//! accessories running.
//!
//! The next `wharf up` restores the release that was serving (the
//! rolled-back-to one after a rollback), accessories first, and deploys
//! the working tree only when it is not that release's source (or with
//! `--deploy`).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use wharf_config::AppConfig;
use wharf_deploy::AccessoryAction;
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
    let (recovery_tx, mut recovery) = mpsc::unbounded_channel();
    let mut opts = options(data_dir, &args.listen)?;
    opts.recovery_progress = Some(recovery_tx);
    let server = Server::start(opts).await?;
    let info = server.info().clone();
    settings::remember_server(&info.data_dir);
    super::server::announce_api(&info);
    output::note(&format!(
        "wharf server: proxy http://{}{} · metrics http://{}/metrics · server log {}",
        info.proxy,
        info.https
            .map(|a| format!(" · https {a}"))
            .unwrap_or_default(),
        info.admin,
        info.data_dir.join("server.log").display()
    ));

    let engine = server.engine().clone();
    let mut logs = engine.runtime().log_lines();
    let env: BTreeMap<String, String> = args.env.into_iter().collect();

    // After a restart: the release that was serving comes back first (in
    // the background, as under `wharf server`); its progress is shown here.
    let restoring = server
        .restoring
        .iter()
        .find(|(app, _)| *app == config.name)
        .map(|(_, n)| *n);
    let mut restored = None;
    if let Some(number) = restoring {
        output::note(&format!(
            "{} release {number} was serving when wharf stopped: restoring it",
            config.name
        ));
        let mut view = ProgressView::default();
        let outcome = tokio::select! {
            outcome = async {
                while let Some((app, p)) = recovery.recv().await {
                    if app == config.name
                        && let Some(outcome) = view.show(&p)
                    {
                        return Some(outcome);
                    }
                }
                None
            } => outcome,
            _ = shutdown_signal() => {
                stop(server, &config, &args.dir).await;
                return Ok(());
            }
        };
        restored = Some((number, outcome.as_ref().is_some_and(|(ok, _)| *ok)));
        if let Some((false, message)) = outcome {
            output::error(&message);
        }
    }

    // Deploy the working tree unless what serves is made from it.
    let deploy = match restored {
        None => true,
        Some((number, false)) => {
            output::note(&format!(
                "the restore of release {number} failed: deploying the working tree instead"
            ));
            true
        }
        Some((number, true)) if args.deploy => {
            output::note(&format!(
                "release {number} is serving again; deploying the working tree (--deploy)"
            ));
            true
        }
        Some((number, true)) => match engine.source_differs(&args.dir, &env, number).await {
            Ok(None) => {
                output::note(&format!(
                    "release {number} is serving again and the working tree is its source: nothing to deploy (`wharf up --deploy` deploys anyway)"
                ));
                false
            }
            Ok(Some(why)) => {
                output::note(&format!("{why}: deploying the working tree"));
                true
            }
            Err(e) => {
                output::note(&format!(
                    "could not compare the working tree with release {number} ({e}): deploying it"
                ));
                true
            }
        },
    };

    if deploy {
        // Through the queue, as every deploy: one a client started
        // meanwhile ends first.
        let submitted = engine.submit(
            &config.name,
            wharf_deploy::JobArgs::Deploy {
                source_dir: std::fs::canonicalize(&args.dir).unwrap_or_else(|_| args.dir.clone()),
                env,
                pause: false,
                version: None,
                image: None,
                source: None,
            },
        )?;
        let job = submitted.job;
        let mut rx = submitted.progress;
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
            let _ = engine.cancel_job(job);
            stop(server, &config, &args.dir).await;
            return Ok(());
        }
        let serving = engine.routed_release(&config.name);
        match outcome {
            Some((true, _)) => {}
            Some((false, message)) if serving.is_none() => {
                stop(server, &config, &args.dir).await;
                return Err(Exit::Failed(message).into());
            }
            // The message says which release keeps serving.
            Some((false, message)) => output::error(&message),
            None => {}
        }
    }
    if engine.routed_release(&config.name).is_some() {
        output::note(&format!(
            "{} is live at {}",
            config.name,
            url(&config, info.proxy)
        ));
    } else {
        output::error(&format!(
            "{} is not serving; see `wharf status`. Fix it and run `wharf deploy {}`, or stop with Ctrl-C",
            config.name,
            args.dir.display()
        ));
    }
    output::note("following logs; Ctrl-C stops the app and the server");
    tokio::select! {
        _ = async {
            loop {
                match logs.recv().await {
                    // Instances only: build and release-command output was
                    // shown as the deploy's progress already.
                    Ok(l) if l.app == config.name && is_instance_line(&l) => {
                        output::data(&format!("{} | {}", l.instance, l.line));
                    }
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

/// Whether a log line is an instance's (`<app>-r<n>-<process>-<index>`),
/// not a task's (`<app>-r<n>-build`, `<app>-r<n>-release`, an accessory's
/// image build).
fn is_instance_line(l: &wharf_runtime::LogLine) -> bool {
    let prefix = format!("{}-r{}-{}-", l.app, l.release, l.process);
    l.instance
        .strip_prefix(&prefix)
        .is_some_and(|index| !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()))
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
        .and_then(|r| r.hosts.first().cloned())
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
