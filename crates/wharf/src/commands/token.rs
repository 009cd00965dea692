//! `wharf token create|list|revoke`: the API tokens of the https listener.
//! A new token is printed once, on stdout; the server keeps only its hash.

use anyhow::Result;
use wharf_server::api::TokenBody;
use wharf_server::client::Client;

use crate::cli::TokenCommand;
use crate::output;

pub async fn run(client: &Client, command: TokenCommand) -> Result<()> {
    match command {
        TokenCommand::Create {
            scope,
            app,
            expires,
            name,
            json,
        } => {
            let made = client
                .create_token(&TokenBody {
                    name,
                    scope,
                    app,
                    expires_in_secs: expires.map(|d| d.as_secs().max(1)),
                })
                .await?;
            if json {
                output::json(&made);
            } else {
                output::data(&made.secret);
                let limits = match (&made.token.app, made.token.expires_ms) {
                    (Some(app), Some(at)) => {
                        format!(" for app {app}, expiring {}", output::rfc3339(at))
                    }
                    (Some(app), None) => format!(" for app {app}"),
                    (None, Some(at)) => format!(", expiring {}", output::rfc3339(at)),
                    (None, None) => String::new(),
                };
                output::note(&format!(
                    "created token {} (scope {}{limits}); it is shown only this once: keep it in a secret store, and use it as WHARF_TOKEN with --server https://…",
                    made.token.id, made.token.scope
                ));
            }
        }
        TokenCommand::List { json } => {
            let tokens = client.tokens().await?;
            if json {
                output::json(&tokens);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = tokens
                .iter()
                .map(|t| {
                    let state = match (t.revoked_ms, t.expires_ms) {
                        (Some(at), _) => format!("revoked {}", output::ago(at)),
                        (None, Some(at)) if at <= output::now_ms() => "expired".to_owned(),
                        (None, Some(at)) => format!("expires {}", output::rfc3339(at)),
                        (None, None) => "active".to_owned(),
                    };
                    vec![
                        t.id.clone(),
                        t.scope.clone(),
                        t.app.clone().unwrap_or_else(|| "*".into()),
                        state,
                        t.last_used_ms.map_or_else(|| "never".into(), output::ago),
                        t.name.clone(),
                    ]
                })
                .collect();
            output::data(&output::table(
                &["ID", "SCOPE", "APP", "STATE", "LAST USED", "NAME"],
                &rows,
            ));
        }
        TokenCommand::Revoke { id } => {
            // Accept the whole token text too.
            let id = wharf_auth_id(&id);
            client.revoke_token(&id).await?;
            output::note(&format!("revoked token {id}: it is refused from now on"));
        }
    }
    Ok(())
}

/// The id part of `wharf_<id>_<secret>`, or `text` as it is.
fn wharf_auth_id(text: &str) -> String {
    text.strip_prefix("wharf_")
        .and_then(|rest| rest.split_once('_'))
        .map_or_else(|| text.to_owned(), |(id, _)| id.to_owned())
}
