//! `wharf prune`: what the runtimes keep for releases that are gone.

use anyhow::Result;
use wharf_server::client::Client;

use crate::cli::PruneArgs;
use crate::output;

pub async fn run(client: &Client, args: PruneArgs) -> Result<()> {
    let report = client.prune().await?;
    if args.json {
        output::json(&report);
        return Ok(());
    }
    for image in &report.images {
        output::data(&format!("removed image {image}"));
    }
    for container in &report.containers {
        output::data(&format!("removed container {container}"));
    }
    for source in &report.sources {
        output::data(&format!("removed source {source}"));
    }
    output::note(&format!(
        "pruned {} image{} and {} container{}, {} reclaimed",
        report.images.len(),
        if report.images.len() == 1 { "" } else { "s" },
        report.containers.len(),
        if report.containers.len() == 1 {
            ""
        } else {
            "s"
        },
        output::human_bytes(report.reclaimed_bytes)
    ));
    Ok(())
}
