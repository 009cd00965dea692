//! `wharf apps list`, `wharf apps remove APP [--volumes] [--yes]` and
//! `wharf maintenance on|off [APP] [--message TEXT]`.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Result;
use wharf_server::client::Client;

use crate::Exit;
use crate::cli::{AppsCommand, MaintenanceArgs};
use crate::output;

pub async fn run(client: &Client, command: AppsCommand) -> Result<()> {
    match command {
        AppsCommand::List { json } => list(client, json).await,
        AppsCommand::Remove {
            app,
            volumes,
            yes,
            json,
        } => remove(client, &app, volumes, yes, json).await,
    }
}

async fn list(client: &Client, json: bool) -> Result<()> {
    let status = client.status().await?;
    if json {
        output::json(&status.apps);
        return Ok(());
    }
    if status.apps.is_empty() {
        output::note("no apps yet; deploy one with `wharf deploy DIR`");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = status
        .apps
        .iter()
        .map(|a| {
            vec![
                a.name.clone(),
                a.state.replace('_', " "),
                a.release.map_or_else(|| "-".into(), |r| r.to_string()),
                a.state_detail
                    .as_deref()
                    .and_then(|d| d.lines().next())
                    .unwrap_or("")
                    .to_owned(),
            ]
        })
        .collect();
    output::data(&output::table(
        &["APP", "STATE", "RELEASE", "DETAIL"],
        &rows,
    ));
    Ok(())
}

async fn remove(client: &Client, app: &str, volumes: bool, yes: bool, json: bool) -> Result<()> {
    // The app must exist before anyone is asked about it.
    let status = client.status().await?;
    if !status.apps.iter().any(|a| a.name == app) {
        return Err(Exit::Usage(format!(
            "no app named {app} on this server; `wharf apps list` shows them"
        ))
        .into());
    }
    if !yes {
        let data = if volumes {
            " and its volumes (the data in them)"
        } else {
            " (its named volumes are kept)"
        };
        confirm(
            &format!("removing {app}"),
            &format!(
                "This stops {app} and removes its instances, accessories, releases, images, logs and history{data}."
            ),
            app,
            &format!("{app} was left as it is"),
        )?;
    }
    let removed = client.remove_app(app, volumes).await?;
    if json {
        output::json(&removed);
        return Ok(());
    }
    output::note(&format!(
        "removed {app}: {} containers, {} images{}",
        removed.containers.len(),
        removed.images.len(),
        if volumes {
            format!(", {} volumes", removed.volumes.len())
        } else {
            String::new()
        }
    ));
    if !removed.kept_volumes.is_empty() {
        output::note(&format!(
            "kept its volumes (their data is still there): {}; `wharf apps remove {app} --volumes` would have deleted them",
            removed.kept_volumes.join(", ")
        ));
    }
    Ok(())
}

/// Says what `doing` will do (`what`) and asks on the terminal to type
/// `expected`; refuses without a terminal. `left` says what stays as it was.
pub(crate) fn confirm(doing: &str, what: &str, expected: &str, left: &str) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(Exit::Usage(format!(
            "{doing} cannot be undone and there is no terminal to confirm on; pass --yes"
        ))
        .into());
    }
    {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "{what}\nType {expected} to confirm: ");
        let _ = err.flush();
    }
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() != expected {
        return Err(Exit::Failed(format!("not confirmed; {left}")).into());
    }
    Ok(())
}

pub async fn maintenance(client: &Client, args: MaintenanceArgs) -> Result<()> {
    let app = super::resolve_app(client, args.app).await?;
    let on = args.state == "on";
    if !on && args.message.is_some() {
        return Err(Exit::Usage("--message goes with `on`".into()).into());
    }
    let body = wharf_server::api::MaintenanceBody {
        on,
        message: args.message,
    };
    client.maintenance(&app, &body).await?;
    if on {
        output::note(&format!(
            "{app} is in maintenance: every request gets 503 with Retry-After; its instances keep running (`wharf maintenance off {app}` to serve again)"
        ));
    } else {
        output::note(&format!("{app} serves again"));
    }
    Ok(())
}
