//! `wharf events`: deploy history and what happened to instances.

use anyhow::Result;
use wharf_server::client::Client;

use crate::cli::EventsArgs;
use crate::output;

pub async fn run(client: &Client, args: EventsArgs) -> Result<()> {
    let app = super::resolve_app(client, args.app).await?;
    let events = client.events(&app, args.limit).await?;
    if args.json {
        output::json(&events);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| vec![output::ago(e.at_ms), e.level.clone(), e.message.clone()])
        .collect();
    output::data(&output::table(&["WHEN", "LEVEL", "EVENT"], &rows));
    Ok(())
}
