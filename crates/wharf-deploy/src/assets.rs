//! Asset bridging between releases (Kamal's `asset_path`).
//!
//! A page rendered by release N names fingerprinted files
//! (`/assets/app-3f2a.css`) that release N+1 no longer has. While both may
//! answer (the switch, a canary, a rollback), each must serve the other's
//! files too, or the page loses its CSS and JS.
//!
//! So every release of an app with `asset_path` gets a host directory
//! `<release dir>/.wharf-assets`: the files at `asset_path` in its image
//! (docker) or release directory (process), copied out once when the
//! release is prepared. Before a release starts, the files of the release
//! serving now are added to it (never replacing one of its own), and its
//! files to the serving one's: both directories then hold the union. The
//! directory is mounted read-only (docker) or linked (process) at
//! `asset_path` in every `http` process that runs the same image, so the
//! app's own static file server sends them. It goes with its release when
//! retention removes it.
//!
//! Architecture invariant: a release's own files always win over bridged
//! ones (`manifest.json`, unfingerprinted names).

use std::path::{Path, PathBuf};

use wharf_config::{AppConfig, ProcessConfig, RuntimeKind};
use wharf_runtime::{VolumeMount, VolumeSource};

use crate::deploy::Run;
use crate::step::Step;
use crate::{DeployError, Engine};

/// Where a release keeps its bridged assets, inside its directory.
const ASSETS_DIR: &str = ".wharf-assets";

/// The bridged-assets directory of the release prepared in `dir`.
pub(crate) fn assets_dir(dir: &Path) -> PathBuf {
    dir.join(ASSETS_DIR)
}

/// The process whose image the assets come from: the first `http` process
/// (by name) that runs the app's image, else the first `http` process.
fn source_process(config: &AppConfig) -> Option<&ProcessConfig> {
    let mut http = config.http_processes();
    let first = config.http_processes().next();
    http.find(|p| p.image.is_none()).or(first)
}

/// The mount that serves a release's bridged assets to `process`, if it
/// gets one: `http` processes running the image the assets came from.
pub(crate) fn mount_for(
    config: &AppConfig,
    process: &ProcessConfig,
    dir: &Path,
) -> Option<VolumeMount> {
    let path = config.asset_path.as_ref()?;
    let source = source_process(config)?;
    if process.http.is_none() || process.image != source.image {
        return None;
    }
    Some(VolumeMount {
        source: VolumeSource::Bind(assets_dir(dir)),
        target: path.clone(),
        // A linked directory cannot be made read-only.
        read_only: config.runtime == RuntimeKind::Docker,
    })
}

impl Engine {
    /// Gives release `number` (prepared in `dir`) its bridged assets and
    /// merges them with those of the release serving now (see the module
    /// docs). Nothing without `asset_path`.
    pub(crate) async fn bridge_assets(
        &self,
        run: &Run,
        config: &AppConfig,
        number: i64,
        dir: &Path,
    ) -> Result<(), DeployError> {
        let (Some(path), Some(source)) = (&config.asset_path, source_process(config)) else {
            return Ok(());
        };
        let serving = match self.routes.serving(&run.app.name) {
            Some(s) if s.number != number => {
                let release = self.store.release(&run.app, s.number)?;
                release.dir.map(|d| (s.number, assets_dir(Path::new(&d))))
            }
            _ => None,
        };
        let detail = match &serving {
            Some((n, _)) => format!("{path}, shared with release {n}"),
            None => path.clone(),
        };
        run.step(self, Step::Assets, Some(detail)).await?;
        let own = assets_dir(dir);
        if !own.is_dir() {
            // Copied beside, then renamed: a crash never leaves half of it.
            let tmp = dir.join(format!("{ASSETS_DIR}.tmp"));
            let runtime = self.runtime_for(config).await?;
            runtime
                .copy_out(&run.app.name, dir, &source.name, path, &tmp)
                .await?;
            std::fs::rename(&tmp, &own).map_err(|e| io_error(&run.app.name, &own, e))?;
        }
        if let Some((n, theirs)) = serving
            && theirs.is_dir()
        {
            let (a, b, app) = (own.clone(), theirs.clone(), run.app.name.clone());
            tokio::task::spawn_blocking(move || {
                wharf_runtime::volumes::merge_missing(&b, &a).map_err(|e| io_error(&app, &b, e))?;
                wharf_runtime::volumes::merge_missing(&a, &b).map_err(|e| io_error(&app, &a, e))
            })
            .await
            .map_err(|e| io_error(&run.app.name, &own, std::io::Error::other(e)))??;
            tracing::info!(app = %run.app.name, release = number, with = n, "assets bridged");
        }
        Ok(())
    }
}

fn io_error(app: &str, path: &Path, source: std::io::Error) -> DeployError {
    DeployError::Assets {
        app: app.to_owned(),
        path: path.to_owned(),
        source,
    }
}
