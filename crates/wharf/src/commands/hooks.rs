//! `wharf hooks secret|deliveries`: push to deploy. `secret` makes an
//! app's webhook secret on the server and prints it once (stdout: the
//! secret alone, so it can be piped; stderr: where to paste it), or with
//! `--forge-token` stores the forge API token read from stdin;
//! `deliveries` lists what the forges sent and what wharf did with it.

use std::io::{BufRead, IsTerminal, Read};

use anyhow::Result;
use clap::{Args, Subcommand};
use wharf_server::client::{Client, Endpoint};
use wharf_server::hooks::HookSecretCreated;

use crate::Exit;
use crate::output;

#[derive(Debug, Subcommand)]
pub enum HooksCommand {
    /// Make a new webhook secret for APP and print it once (the previous
    /// one stops working), with the URL and header each forge uses; with
    /// `--forge-token`, store the forge API token read from stdin instead.
    Secret(SecretArgs),
    /// The webhook deliveries APP received, newest first: forge, event,
    /// ref, commit, and what was done (queued, ignored, …) with the job.
    Deliveries(DeliveriesArgs),
}

#[derive(Debug, Args)]
pub struct SecretArgs {
    /// The app (needed when the server runs several apps).
    pub app: Option<String>,
    /// Read a forge API token (for commit statuses) from stdin and store
    /// it, instead of making a webhook secret.
    #[arg(long)]
    pub forge_token: bool,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DeliveriesArgs {
    /// The app (needed when the server runs several apps).
    pub app: Option<String>,
    /// How many, newest first.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(client: &Client, command: HooksCommand) -> Result<()> {
    match command {
        HooksCommand::Secret(args) => {
            let app = super::resolve_app(client, args.app).await?;
            if args.forge_token {
                let token = read_token(&app)?;
                let view = client.set_forge_token(&app, &token).await?;
                if args.json {
                    output::json(&view);
                }
                output::note(&format!(
                    "stored the forge token of {app} on the server (mode 0600); commit statuses are posted with it"
                ));
                return Ok(());
            }
            let made = client.create_hook_secret(&app).await?;
            if args.json {
                output::json(&made);
                return Ok(());
            }
            output::data(&made.secret);
            output::note(&where_to_paste(client.endpoint(), &made));
        }
        HooksCommand::Deliveries(args) => {
            let app = super::resolve_app(client, args.app).await?;
            let view = client.hook_deliveries(&app, args.limit).await?;
            if args.json {
                output::json(&view);
                return Ok(());
            }
            if view.deliveries.is_empty() {
                output::note(&format!(
                    "no webhook delivery of {app} was recorded yet; `wharf hooks secret {app}` shows where the forge sends them"
                ));
            } else {
                let rows: Vec<Vec<String>> = view
                    .deliveries
                    .iter()
                    .map(|d| {
                        let mut outcome = d.outcome.to_string();
                        if d.repeats > 0 {
                            outcome.push_str(&format!(" (+{} duplicate)", d.repeats));
                        }
                        vec![
                            output::ago(d.received_ms),
                            d.forge.clone(),
                            d.event.clone(),
                            d.ref_name.as_deref().map(short_ref).unwrap_or_default(),
                            d.commit
                                .as_deref()
                                .map(|c| c.get(..7).unwrap_or(c).to_owned())
                                .unwrap_or_default(),
                            outcome,
                            d.job_id.map(|j| j.to_string()).unwrap_or_default(),
                        ]
                    })
                    .collect();
                output::data(&output::table(
                    &["WHEN", "FORGE", "EVENT", "REF", "COMMIT", "OUTCOME", "JOB"],
                    &rows,
                ));
            }
            for r in &view.refusals {
                output::note(&format!(
                    "refused: {} {} deliver{} (not listed), the last {}: {}",
                    r.count,
                    r.forge,
                    if r.count == 1 { "y" } else { "ies" },
                    output::ago(r.last_ms),
                    r.last_reason
                ));
            }
        }
    }
    Ok(())
}

/// `refs/heads/main` → `main`, `refs/tags/v1` → `v1`.
fn short_ref(name: &str) -> String {
    name.strip_prefix("refs/heads/")
        .or_else(|| name.strip_prefix("refs/tags/"))
        .unwrap_or(name)
        .to_owned()
}

/// The forge token, from stdin: one line on a terminal, all of it from a
/// pipe.
fn read_token(app: &str) -> Result<String> {
    let stdin = std::io::stdin();
    let mut text = String::new();
    if stdin.is_terminal() {
        output::note(&format!(
            "paste the forge API token for {app}, then press Enter:"
        ));
        stdin.lock().read_line(&mut text)?;
    } else {
        stdin.lock().take(64 * 1024).read_to_string(&mut text)?;
    }
    let token = text.trim();
    if token.is_empty() {
        return Err(Exit::Usage(
            "no forge token on stdin; pipe it in, e.g. `wharf hooks secret APP --forge-token < token.txt`".into(),
        )
        .into());
    }
    Ok(token.to_owned())
}

/// The URL forges post to, and each forge's field and header.
fn where_to_paste(endpoint: &Endpoint, made: &HookSecretCreated) -> String {
    let (url, url_note) = match (endpoint, made.api) {
        (Endpoint::Https { host, port, .. }, _) => {
            (format!("https://{host}:{port}{}", made.path), None)
        }
        (_, Some(api)) if api.ip().is_unspecified() => (
            format!("https://HOST:{}{}", api.port(), made.path),
            Some("HOST is this server's public name or address"),
        ),
        (_, Some(api)) => (format!("https://{api}{}", made.path), None),
        (_, None) => (
            format!("https://HOST:PORT{}", made.path),
            Some(
                "this server has no https API yet: start it with `wharf server --api 0.0.0.0:8443` so forges can reach it",
            ),
        ),
    };
    let mut lines = vec![
        format!(
            "made a new webhook secret for {}{}; it is shown only this once: paste it into the forge's webhook now",
            made.app,
            if made.replaced {
                " (the previous one no longer works)"
            } else {
                ""
            }
        ),
        format!("  URL: {url}  (content type `application/json`, push events)"),
    ];
    if let Some(n) = url_note {
        lines.push(format!("       {n}"));
    }
    let width = made.forges.iter().map(|f| f.name.len()).max().unwrap_or(0);
    for f in &made.forges {
        lines.push(format!(
            "  {:<width$}  field `{}`; deliveries carry `{}`{}",
            f.name,
            f.field,
            f.header,
            f.note
                .as_deref()
                .map(|n| format!("; {n}"))
                .unwrap_or_default()
        ));
    }
    lines.push(
        "  the API's certificate is self-signed: turn the forge's SSL verification off for this hook, or put a proxy with a trusted certificate in front of the API".into(),
    );
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_are_shortened() {
        assert_eq!(short_ref("refs/heads/main"), "main");
        assert_eq!(short_ref("refs/tags/v1.2"), "v1.2");
        assert_eq!(short_ref("refs/notes/x"), "refs/notes/x");
    }
}
