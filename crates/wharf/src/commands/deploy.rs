//! `wharf deploy DIR`: validate locally, then ask the server to deploy.
//!
//! To the server on this machine, the directory is named (the server
//! snapshots it). To a server elsewhere (`--server`), the directory is
//! packed (honouring `.wharfignore` or `.dockerignore`, without `.git` and
//! `.wharf`) and uploaded with its SHA-256 unless the server already has
//! that hash; the deploy then names the hash, and the release records the
//! git revision of the directory as the client saw it.

use anyhow::{Context, Result};
use wharf_config::AppConfig;
use wharf_server::api::DeployBody;
use wharf_server::client::Client;

use crate::Exit;
use crate::cli::DeployArgs;
use crate::output;

pub async fn run(client: &Client, args: DeployArgs) -> Result<()> {
    if let (Some(url), Some(reference)) = (&args.git, &args.reference) {
        let body = DeployBody {
            source_dir: None,
            upload: None,
            git: Some(wharf_server::api::GitSource {
                url: url.clone(),
                reference: reference.clone(),
            }),
            env: args.env.into_iter().collect(),
            wait: args.wait,
            pause: args.pause,
            version: args.version,
            image: args.image,
        };
        let lines = client.deploy(&body).await?;
        return super::follow_progress(lines, args.json, args.wait).await;
    }
    // Config errors are found here, all at once, before anything moves.
    AppConfig::load(&args.dir)?;
    let source_dir = std::fs::canonicalize(&args.dir)
        .with_context(|| format!("could not resolve {}", args.dir.display()))?;
    let mut body = DeployBody {
        source_dir: None,
        upload: None,
        git: None,
        env: args.env.into_iter().collect(),
        wait: args.wait,
        pause: args.pause,
        version: args.version,
        image: args.image,
    };
    if client.is_local() {
        body.source_dir = Some(source_dir);
    } else {
        body.upload = Some(upload(client, &source_dir).await?);
        if body.version.is_none() {
            body.version = wharf_deploy::git_revision(&source_dir).await;
        }
    }
    let lines = client.deploy(&body).await?;
    super::follow_progress(lines, args.json, args.wait).await
}

/// Packs `dir` and uploads it unless the server has it; its hash.
async fn upload(client: &Client, dir: &std::path::Path) -> Result<String> {
    let owned = dir.to_path_buf();
    let packed = tokio::task::spawn_blocking(move || {
        wharf_source::pack(&owned, &wharf_source::Limits::default())
    })
    .await
    .context("packing the app")?
    .map_err(|e| Exit::Usage(e.to_string()))?;
    let summary = &packed.summary;
    for skipped in &summary.skipped {
        output::note(&format!(
            "warning: left {} out of the upload: a {} cannot be sent",
            skipped.path, skipped.kind
        ));
    }
    if client.has_source(&summary.sha256).await? {
        output::note(&format!(
            "the server already has this source (sha256 {})",
            &summary.sha256[..12]
        ));
    } else {
        output::note(&format!(
            "uploading {} files, {} (sha256 {}{})",
            summary.files,
            output::human_bytes(summary.size),
            &summary.sha256[..12],
            summary
                .ignore_file
                .map(|f| format!(", without what {f} excludes"))
                .unwrap_or_default()
        ));
        client.upload_source(&summary.sha256, packed.tar).await?;
    }
    Ok(packed.summary.sha256)
}
