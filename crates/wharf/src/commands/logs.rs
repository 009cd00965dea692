//! `wharf logs [-f] [--process P]`.

use anyhow::Result;
use wharf_server::client::Client;

use crate::cli::LogsArgs;
use crate::output;

pub async fn run(client: &Client, args: LogsArgs) -> Result<()> {
    let app = super::resolve_app(client, args.app).await?;
    let mut lines = client
        .logs(&app, args.process.as_deref(), args.tail, args.follow)
        .await?;
    while let Some(line) = lines.next().await {
        let line = line?;
        if args.json {
            output::data(&serde_json::to_string(&line)?);
        } else {
            output::data(&format!("{} | {}", line.instance, line.line));
        }
    }
    Ok(())
}
