//! `wharf releases`: live, retained, failed and pruned releases.

use anyhow::Result;
use wharf_server::client::Client;

use crate::cli::AppArgs;
use crate::output;

pub async fn run(client: &Client, args: AppArgs) -> Result<()> {
    let app = super::resolve_app(client, args.app).await?;
    let releases = client.releases(&app).await?;
    if args.json {
        output::json(&releases);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = releases
        .iter()
        .map(|r| {
            vec![
                r.number.to_string(),
                r.status.clone(),
                r.revision.clone().unwrap_or_else(|| "-".into()),
                output::ago(r.created_ms),
                r.source
                    .as_deref()
                    .map(short_source)
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    output::data(&output::table(
        &["RELEASE", "STATUS", "REVISION", "CREATED", "SOURCE"],
        &rows,
    ));
    Ok(())
}

/// A release's source, short: an upload's hash and a commit to 12 digits.
fn short_source(source: &str) -> String {
    match source.split_once(' ') {
        Some(("upload", hash)) => format!("upload {}", hash.chars().take(19).collect::<String>()),
        Some(("git", rest)) => match rest.rsplit_once(' ') {
            Some((url, commit)) => {
                format!("git {url} {}", commit.chars().take(12).collect::<String>())
            }
            None => source.to_owned(),
        },
        _ => source.to_owned(),
    }
}
