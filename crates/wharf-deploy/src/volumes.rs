//! `wharf volumes [APP]` and `wharf volumes remove APP NAME`: the named
//! volumes an app keeps across releases (its processes' and its
//! accessories'), with their size and who mounts them.
//!
//! Architecture invariant: a volume's data is deleted only here (asked by
//! name) or by `wharf apps remove --volumes`; never by a deploy, a
//! rollback, retention or `wharf prune`. A volume the serving release still
//! mounts cannot be removed.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use wharf_config::AppConfig;
use wharf_runtime::Runtime;

use crate::{DeployError, Engine};

/// One named volume of an app, as `wharf volumes` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeView {
    pub app: String,
    /// The name in `wharf.toml`.
    pub name: String,
    /// The engine's volume name, or the directory (process runtime);
    /// `None` while no instance has mounted it yet.
    pub location: Option<String>,
    pub size_bytes: Option<u64>,
    /// What mounts it in the config the app runs with: `process web`,
    /// `accessory db`.
    pub users: Vec<String>,
}

/// Who mounts named volume `name` in `config`.
fn users(config: &AppConfig, name: &str) -> Vec<String> {
    let named = |v: &wharf_config::VolumeSpec| !v.is_bind() && v.source == name;
    let processes = config
        .processes
        .values()
        .filter(|p| p.volumes.iter().any(named))
        .map(|p| format!("process {}", p.name));
    let accessories = config
        .accessories
        .values()
        .filter(|a| a.volumes.iter().any(named))
        .map(|a| format!("accessory {}", a.name));
    processes.chain(accessories).collect()
}

/// Every named volume `config` declares.
fn declared(config: &AppConfig) -> Vec<String> {
    let mut names: Vec<String> = config
        .processes
        .values()
        .flat_map(|p| p.volumes.iter())
        .chain(config.accessories.values().flat_map(|a| a.volumes.iter()))
        .filter(|v| !v.is_bind())
        .map(|v| v.source.clone())
        .collect();
    names.sort();
    names.dedup();
    names
}

impl Engine {
    /// The named volumes of `app`: those the runtime has, and those its
    /// config declares that no instance made yet.
    pub async fn volumes(self: &Arc<Self>, app: &str) -> Result<Vec<VolumeView>, DeployError> {
        let config = self.app_config(app).ok().map(|(c, _)| c);
        if let Some(config) = &config {
            self.runtime_for(config).await?;
        } else {
            self.store.app(app)?;
        }
        let mut out: Vec<VolumeView> = self
            .runtime
            .volumes(app)
            .await?
            .into_iter()
            .map(|v| VolumeView {
                app: app.to_owned(),
                users: config
                    .as_ref()
                    .map(|c| users(c, &v.name))
                    .unwrap_or_default(),
                name: v.name,
                location: Some(v.location),
                size_bytes: v.size_bytes,
            })
            .collect();
        for name in config.as_ref().map(declared).unwrap_or_default() {
            if !out.iter().any(|v| v.name == name) {
                out.push(VolumeView {
                    app: app.to_owned(),
                    users: config.as_ref().map(|c| users(c, &name)).unwrap_or_default(),
                    name,
                    location: None,
                    size_bytes: None,
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Deletes named volume `name` of `app` and its data. Refused while the
    /// config the app runs with mounts it.
    pub async fn remove_volume(self: &Arc<Self>, app: &str, name: &str) -> Result<(), DeployError> {
        let row = self.store.app(app)?;
        let lock = self.app_lock(app);
        let _guard = self.acquire(&lock, &row, false).await?;
        if let Ok((config, _)) = self.app_config(app) {
            self.runtime_for(&config).await?;
            let users = users(&config, name);
            if !users.is_empty() {
                return Err(DeployError::VolumeInUse {
                    app: app.to_owned(),
                    name: name.to_owned(),
                    users,
                });
            }
        }
        if !self.runtime.remove_volume(app, name).await? {
            return Err(DeployError::NoVolume {
                app: app.to_owned(),
                name: name.to_owned(),
            });
        }
        tracing::info!(app, volume = name, "removed volume");
        Ok(())
    }
}
