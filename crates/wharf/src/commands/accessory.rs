//! `wharf accessory boot|stop|logs|remove|list`: an app's accessories, by
//! the app's name like every other command (`--app`, or the server's only
//! app). The server knows them from the app's serving release; `--dir`
//! reads them from a wharf.toml instead (before the first deploy, or to
//! apply an edited accessory).

use anyhow::{Context, Result};
use wharf_config::AppConfig;
use wharf_server::api::{AccessoryBody, AccessoryStatus};
use wharf_server::client::Client;

use crate::cli::{AccessoryApp, AccessoryCommand, AccessoryTarget};
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
            let (app, dir) = app_of(client, &target.app).await?;
            let mut lines = client
                .accessory_logs(&app, &target.name, dir.as_deref(), tail, follow)
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
        AccessoryCommand::List { app, json } => {
            let (app, dir) = app_of(client, &app).await?;
            let list = client.accessories(&app, dir.as_deref()).await?;
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

/// The app a command is about, and the directory whose wharf.toml the
/// server reads instead of the serving release's config (absolute), if
/// `--dir` was given.
async fn app_of(
    client: &Client,
    which: &AccessoryApp,
) -> Result<(String, Option<std::path::PathBuf>)> {
    let Some(dir) = &which.dir else {
        return Ok((super::resolve_app(client, which.app.clone()).await?, None));
    };
    let config = AppConfig::load(dir)?;
    if let Some(app) = &which.app
        && *app != config.name
    {
        return Err(crate::Exit::Usage(format!(
            "{} describes app {:?}, not {app:?}",
            dir.join(wharf_config::FILE_NAME).display(),
            config.name
        ))
        .into());
    }
    let dir = std::fs::canonicalize(dir)
        .with_context(|| format!("could not resolve {}", dir.display()))?;
    Ok((config.name, Some(dir)))
}

async fn act(
    client: &Client,
    target: &AccessoryTarget,
    action: &str,
    volumes: bool,
    json: bool,
) -> Result<()> {
    let (app, dir) = app_of(client, &target.app).await?;
    let body = AccessoryBody {
        source_dir: dir,
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
