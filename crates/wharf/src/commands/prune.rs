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
        human_bytes(report.reclaimed_bytes)
    ));
    Ok(())
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
