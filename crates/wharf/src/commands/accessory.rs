//! `wharf accessory boot|stop|logs|remove|list`: the app's accessories,
//! named in its `wharf.toml` (read from `--dir`, default `.`).

use std::path::Path;

use anyhow::{Context, Result};
use wharf_config::AppConfig;
use wharf_server::api::{AccessoryBody, AccessoryStatus};
use wharf_server::client::Client;

use crate::cli::{AccessoryCommand, AccessoryTarget};
use crate::output;

pub async fn run(client: &Client, command: AccessoryCommand) -> Result<()> {
    match command {
        AccessoryCommand::Boot { target, json } => act(client, &target, "boot", false, json).await,
        AccessoryCommand::Stop { target, json } => act(client, &target, "stop", false, json).await,
        AccessoryCommand::Remove {
            target,
            volumes,
            json,
        } => act(client, &target, "remove", volumes, json).await,
        AccessoryCommand::Logs {
            target,
            follow,
            tail,
            json,
        } => {
            let (app, dir) = app_of(&target.dir)?;
            let mut lines = client
                .accessory_logs(&app, &target.name, Some(&dir), tail, follow)
                .await?;
            while let Some(line) = lines.next().await {
                let line = line?;
                if json {
                    output::data(&serde_json::to_string(&line)?);
                } else {
                    output::data(&line.line);
                }
            }
            Ok(())
        }
        AccessoryCommand::List { dir, json } => {
            let (app, dir) = app_of(&dir)?;
            let list = client.accessories(&app, Some(&dir)).await?;
            if json {
                output::json(&list);
            } else if list.is_empty() {
                output::note(&format!("{app} has no accessories"));
            } else {
                let rows: Vec<Vec<String>> = list.iter().map(row).collect();
                output::data(
                    output::table(&["NAME", "STATE", "HEALTH", "IMAGE", "CONTAINER"], &rows)
                        .trim_end(),
                );
            }
            Ok(())
        }
    }
}

/// The app named by `dir`'s wharf.toml, and `dir` made absolute for the server.
fn app_of(dir: &Path) -> Result<(String, std::path::PathBuf)> {
    let config = AppConfig::load(dir)?;
    let dir = std::fs::canonicalize(dir)
        .with_context(|| format!("could not resolve {}", dir.display()))?;
    Ok((config.name, dir))
}

async fn act(
    client: &Client,
    target: &AccessoryTarget,
    action: &str,
    volumes: bool,
    json: bool,
) -> Result<()> {
    let (app, dir) = app_of(&target.dir)?;
    let body = AccessoryBody {
        source_dir: Some(dir),
        volumes,
    };
    let follow = if action == "boot" {
        output::note(&format!("booting accessory {} of {app}…", target.name));
        build_output(client, &app, &target.name).await
    } else {
        None
    };
    let status = client.accessory(&app, &target.name, action, &body).await;
    if let Some(follow) = follow {
        follow.abort();
    }
    let status = status?;
    if json {
        output::json(&status);
    } else {
        let done = match action {
            "boot" => "is up",
            "stop" => "is stopped",
            _ if volumes => "was removed with its volumes",
            _ => "was removed (its volumes are kept)",
        };
        output::note(&format!("accessory {} of {app} {done}", target.name));
        output::data(&row(&status).join("  "));
    }
    Ok(())
}

/// Shows the output of the accessory's image build, if a boot builds one,
/// as it comes (the boot answers only once the accessory is up). `None`
/// when the server has no log stream for the app (never deployed there).
async fn build_output(
    client: &Client,
    app: &str,
    name: &str,
) -> Option<tokio::task::JoinHandle<()>> {
    // Subscribed before the boot is asked for: no line is missed.
    let mut lines = client.logs(app, Some("build"), 0, true).await.ok()?;
    let instance = format!("{app}-{name}-build");
    Some(tokio::spawn(async move {
        while let Some(Ok(line)) = lines.next().await {
            if line.instance == instance {
                output::note(&format!("    | {}", line.line));
            }
        }
    }))
}

fn row(s: &AccessoryStatus) -> Vec<String> {
    vec![
        s.name.clone(),
        s.state.clone(),
        s.health.clone().unwrap_or_else(|| "-".into()),
        s.image.clone(),
        s.container.clone(),
    ]
}
