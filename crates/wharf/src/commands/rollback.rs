//! `wharf rollback [N]`: back to a retained release.

use anyhow::Result;
use wharf_server::api::RollbackBody;
use wharf_server::client::Client;

use crate::cli::RollbackArgs;

pub async fn run(client: &Client, args: RollbackArgs) -> Result<()> {
    let app = super::resolve_app(client, args.app).await?;
    let lines = client
        .rollback(
            &app,
            &RollbackBody {
                release: args.release,
                wait: args.wait,
            },
        )
        .await?;
    super::follow_progress(lines, args.json, args.wait).await
}
