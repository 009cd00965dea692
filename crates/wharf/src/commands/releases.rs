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
            ]
        })
        .collect();
    output::data(&output::table(
        &["RELEASE", "STATUS", "REVISION", "CREATED"],
        &rows,
    ));
    Ok(())
}
