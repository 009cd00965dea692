//! `wharf deploy DIR`: validate locally, then ask the server to deploy.

use anyhow::{Context, Result};
use wharf_config::AppConfig;
use wharf_server::api::DeployBody;
use wharf_server::client::Client;

use crate::cli::DeployArgs;

pub async fn run(client: &Client, args: DeployArgs) -> Result<()> {
    // Config errors are found here, all at once, before anything moves.
    AppConfig::load(&args.dir)?;
    let source_dir = std::fs::canonicalize(&args.dir)
        .with_context(|| format!("could not resolve {}", args.dir.display()))?;
    let body = DeployBody {
        source_dir,
        env: args.env.into_iter().collect(),
        wait: args.wait,
        pause: args.pause,
        version: args.version,
        image: args.image,
    };
    let lines = client.deploy(&body).await?;
    super::follow_progress(lines, args.json).await
}
