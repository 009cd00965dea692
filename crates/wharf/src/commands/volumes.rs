//! `wharf volumes [APP] [--json]` and `wharf volumes remove APP NAME
//! [--yes]`: the named volumes apps keep across releases.

use anyhow::Result;
use wharf_server::api::VolumeView;
use wharf_server::client::Client;

use crate::cli::{VolumesArgs, VolumesCommand};
use crate::output;

pub async fn run(client: &Client, args: VolumesArgs) -> Result<()> {
    match args.command {
        None => list(client, args.app, args.json).await,
        Some(VolumesCommand::List { app, json }) => list(client, app, json).await,
        Some(VolumesCommand::Remove { app, name, yes }) => remove(client, &app, &name, yes).await,
    }
}

async fn list(client: &Client, app: Option<String>, json: bool) -> Result<()> {
    let apps = match app {
        Some(app) => vec![app],
        None => client
            .status()
            .await?
            .apps
            .into_iter()
            .map(|a| a.name)
            .collect(),
    };
    let mut volumes: Vec<VolumeView> = Vec::new();
    for app in &apps {
        volumes.extend(client.volumes(app).await?);
    }
    if json {
        output::json(&volumes);
        return Ok(());
    }
    if volumes.is_empty() {
        output::note("no volumes: a process or accessory with `volumes` gets them at its deploy");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = volumes
        .iter()
        .map(|v| {
            vec![
                v.app.clone(),
                v.name.clone(),
                v.size_bytes.map_or_else(|| "-".into(), output::human_bytes),
                if v.users.is_empty() {
                    "(unused)".into()
                } else {
                    v.users.join(", ")
                },
                v.location
                    .clone()
                    .unwrap_or_else(|| "(not created yet)".into()),
            ]
        })
        .collect();
    output::data(&output::table(
        &["APP", "VOLUME", "SIZE", "USED BY", "WHERE"],
        &rows,
    ));
    Ok(())
}

async fn remove(client: &Client, app: &str, name: &str, yes: bool) -> Result<()> {
    if !yes {
        super::apps::confirm(
            &format!("removing volume {name} of {app}"),
            &format!("This deletes volume {name} of {app} and every file in it."),
            name,
            &format!("volume {name} was left as it is"),
        )?;
    }
    client.remove_volume(app, name).await?;
    output::note(&format!("removed volume {name} of {app} and its data"));
    Ok(())
}
