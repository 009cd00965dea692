//! `wharf remote add|list|remove|forget` (named servers and pinned
//! certificates, in the user's config dir), and `wharf dial-stdio`, which a
//! client on another machine runs through ssh.

use std::path::Path;

use anyhow::Result;

use crate::Exit;
use crate::cli::RemoteCommand;
use crate::output;
use crate::remotes::{self, Remote, Url};

pub async fn run(command: RemoteCommand) -> Result<()> {
    let dir = remotes::config_dir().ok_or_else(|| {
        Exit::Usage("neither XDG_CONFIG_HOME nor HOME is set; set one of them".into())
    })?;
    let mut known = remotes::load_remotes(&dir).map_err(Exit::Usage)?;
    match command {
        RemoteCommand::Add {
            name,
            url,
            token_from_env,
        } => {
            wharf_config::validate_app_name(&name).map_err(|_| {
                Exit::Usage(format!(
                    "`{name}` is not a remote name: use lowercase letters, digits and `-`"
                ))
            })?;
            let parsed = remotes::parse_url(&url).map_err(Exit::Usage)?;
            let token = if token_from_env {
                Some(
                    std::env::var("WHARF_TOKEN")
                        .ok()
                        .filter(|t| !t.is_empty())
                        .ok_or_else(|| {
                            Exit::Usage("--token-from-env: WHARF_TOKEN is not set".into())
                        })?,
                )
            } else {
                None
            };
            if let Url::Https { host, port } = &parsed {
                let server = format!("{host}:{port}");
                match remotes::known_fingerprint(&dir, &server) {
                    Some(pinned) => {
                        let seen = wharf_server::client::certificate_of(host, *port).await?;
                        if !seen.ca_verified && seen.fingerprint != pinned {
                            return Err(Exit::Failed(format!(
                                "{server} now presents a certificate with fingerprint {}, and {pinned} is pinned; if it was replaced on purpose, run `wharf remote forget {server}` first",
                                seen.fingerprint
                            ))
                            .into());
                        }
                    }
                    None => {
                        crate::settings::first_contact(&dir, host, *port).await?;
                    }
                }
            }
            known.insert(name.clone(), Remote { url, token });
            remotes::save_remotes(&dir, &known).map_err(Exit::Failed)?;
            output::note(&format!(
                "added remote {name}; use it with `--server {name}` or WHARF_SERVER={name}"
            ));
        }
        RemoteCommand::List { json } => {
            if json {
                let list: Vec<serde_json::Value> = known
                    .iter()
                    .map(|(name, r)| {
                        serde_json::json!({"name": name, "url": r.url, "token": r.token.is_some()})
                    })
                    .collect();
                output::json(&list);
            } else {
                let rows: Vec<Vec<String>> = known
                    .iter()
                    .map(|(name, r)| {
                        vec![
                            name.clone(),
                            r.url.clone(),
                            if r.token.is_some() {
                                "kept"
                            } else {
                                "WHARF_TOKEN"
                            }
                            .to_owned(),
                        ]
                    })
                    .collect();
                output::data(&output::table(&["NAME", "URL", "TOKEN"], &rows));
            }
        }
        RemoteCommand::Remove { name } => {
            if known.remove(&name).is_none() {
                return Err(Exit::Usage(format!("there is no remote `{name}`")).into());
            }
            remotes::save_remotes(&dir, &known).map_err(Exit::Failed)?;
            output::note(&format!("removed remote {name}"));
        }
        RemoteCommand::Forget { server } => {
            let server = server
                .trim_start_matches("https://")
                .trim_end_matches('/')
                .to_owned();
            if remotes::set_fingerprint(&dir, &server, None).map_err(Exit::Failed)? {
                output::note(&format!(
                    "forgot the pinned certificate of {server}; the next contact pins the one it presents then"
                ));
            } else {
                return Err(Exit::Usage(format!("no certificate is pinned for {server}")).into());
            }
        }
    }
    Ok(())
}

/// `wharf dial-stdio`: copies stdin to the API socket of the server on
/// `data_dir` and its answers to stdout, until both sides are done.
pub async fn dial_stdio(data_dir: &Path) -> Result<()> {
    let socket = data_dir.join(wharf_server::SOCKET_FILE);
    let mut stream = tokio::net::UnixStream::connect(&socket).await.map_err(|e| {
        Exit::Failed(format!(
            "no wharf server is running on {} (could not connect to {}: {e}); start one with `wharf server`, or name its data directory in the ssh:// URL",
            data_dir.display(),
            socket.display()
        ))
    })?;
    let mut stdio = tokio::io::join(tokio::io::stdin(), tokio::io::stdout());
    match tokio::io::copy_bidirectional(&mut stdio, &mut stream).await {
        Ok(_) => Ok(()),
        // The client hanging up mid-answer is how a follow (`logs -f`) ends.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Exit::Failed(format!("dial-stdio: {e}")).into()),
    }
}
