//! `wharf promote` and `wharf abort`: a hand on a canary in progress.

use anyhow::Result;
use wharf_server::api::Control;
use wharf_server::client::Client;

use crate::cli::ControlArgs;
use crate::output;

pub async fn run(client: &Client, args: ControlArgs, control: Control) -> Result<()> {
    let app = super::resolve_app(client, args.app).await?;
    client.control(&app, control).await?;
    output::note(&match control {
        Control::Promote => format!("{app}: promoted; the deploy moves to its next step"),
        Control::Abort => format!("{app}: abort requested; the new release is being rolled back"),
    });
    Ok(())
}
