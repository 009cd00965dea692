//! `wharf ci --signoff`: once every step passed, a `success` commit status
//! named `signoff` for HEAD, as basecamp's gh-signoff posts it, so a forge's
//! branch protection can require it. Refused when the tree has uncommitted
//! changes or HEAD is not pushed (what was tested must be what the forge
//! has).
//!
//! The forge and repository come from the push remote's URL (the forge
//! from its host for github.com, gitlab.com, bitbucket.org and
//! codeberg.org, else `--forge`); the token from `WHARF_FORGE_TOKEN`; the
//! API from `WHARF_FORGE_API`, else the forge's usual place.

use std::path::Path;

use anyhow::Result;
use wharf_forge::{Forge, Status, StatusState};

use crate::{Exit, output};

/// Posts the signoff status for HEAD of the checkout in `dir`.
pub async fn signoff(dir: &Path, forge: Option<Forge>) -> Result<()> {
    let refuse = |why: String| anyhow::Error::from(Exit::Failed(format!("no signoff: {why}")));
    let dirty = git(dir, &["status", "--porcelain"]).await?;
    if !dirty.trim().is_empty() {
        return Err(refuse(
            "the checkout has uncommitted changes; commit and push them, then run `wharf ci --signoff` again".into(),
        ));
    }
    let push = git(dir, &["rev-parse", "--abbrev-ref", "@{push}"])
        .await
        .map_err(|_| {
            refuse(
                "HEAD has no branch to push to; push it (`git push -u origin HEAD`) first".into(),
            )
        })?;
    let unpushed = git(dir, &["log", "--oneline", "@{push}..HEAD"]).await?;
    if !unpushed.trim().is_empty() {
        return Err(refuse(format!(
            "HEAD has commits {} does not have; push them first",
            push.trim()
        )));
    }
    let remote = push.trim().split('/').next().unwrap_or("origin").to_owned();
    let url = git(dir, &["config", "--get", &format!("remote.{remote}.url")]).await?;
    let url = url.trim();
    let Some((forge, repo)) = wharf_forge::remote_repo(url, forge) else {
        return Err(Exit::Usage(format!(
            "cannot tell the forge and repository of {remote} ({url}); name the forge with --forge github|gitlab|gitea|forgejo|bitbucket"
        ))
        .into());
    };
    let token = std::env::var("WHARF_FORGE_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Exit::Usage(format!(
                "set WHARF_FORGE_TOKEN to a {forge} token that may post commit statuses to {repo}"
            ))
        })?;
    let api = std::env::var("WHARF_FORGE_API")
        .ok()
        .filter(|a| !a.is_empty())
        .or_else(|| wharf_forge::default_api_base(forge, url))
        .ok_or_else(|| {
            Exit::Usage(format!(
                "cannot tell where {forge}'s API is for {url}; set WHARF_FORGE_API"
            ))
        })?;
    let sha = git(dir, &["rev-parse", "HEAD"]).await?;
    let sha = sha.trim();
    let who = git(dir, &["config", "user.name"]).await.unwrap_or_default();
    let who = match who.trim() {
        "" => "wharf ci".to_owned(),
        name => name.to_owned(),
    };
    let status = Status {
        state: StatusState::Success,
        context: "signoff".into(),
        description: Some(format!("{who} signed off")),
        target_url: None,
    };
    let req = wharf_forge::status_request(forge, &api, &repo, sha, &token, &status)
        .map_err(|e| Exit::Usage(format!("cannot post the signoff status: {e}")))?;
    wharf_deploy::statuses::post(&req)
        .await
        .map_err(|e| Exit::Failed(e.to_string()))?;
    let short: String = sha.chars().take(12).collect();
    output::note(&format!(
        "signed off {short} of {repo} on {forge}: status `signoff` = success"
    ));
    Ok(())
}

/// Runs git in `dir`: its stdout, or an error with its stderr.
async fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = tokio::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| Exit::Failed(format!("could not run git ({e}); install git")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Exit::Failed(format!(
            "git {} in {} failed: {}",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
        .into())
    }
}
