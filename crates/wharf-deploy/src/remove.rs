//! `wharf apps remove APP [--volumes]`: an app and everything of it, in
//! the order that drops no request on the way and leaves nothing behind:
//! out of the routing table, drained, instances stopped, leftovers killed,
//! the runtime's containers, images, network and files removed (named
//! volumes only when asked), then the store's record of it.

use std::sync::Arc;
use std::time::Duration;

use wharf_runtime::{RemovedApp, Runtime};

use crate::{DeployError, Engine};

/// How long leftovers of the app get between SIGTERM and SIGKILL.
const LEFTOVER_GRACE: Duration = Duration::from_secs(5);

impl Engine {
    /// Removes `app` (see the module docs). Refused while a deploy,
    /// rollback or restore of it runs.
    pub async fn remove_app(
        self: &Arc<Self>,
        app: &str,
        volumes: bool,
    ) -> Result<RemovedApp, DeployError> {
        let row = self.store.app(app)?;
        let lock = self.app_lock(app);
        let _guard = self.acquire(&lock, &row, false).await?;
        // Its runtime, so a docker app's engine is connected and seen.
        let config = self.app_config(app).ok().map(|(c, _)| c);
        if let Some(config) = &config {
            self.runtime_for(config).await?;
        }
        let live: Vec<_> = self
            .routes
            .all()
            .into_iter()
            .filter(|r| r.config.name == app)
            .collect();
        self.routes.remove(app);
        for release in &live {
            wharf_proxy::drain(&release.backends(), release.config.deploy.drain_timeout).await;
        }
        let specs: Vec<_> = live
            .iter()
            .flat_map(|r| r.instances.iter().map(|i| i.spec.clone()))
            .collect();
        drop(live);
        self.stop_instances(&specs).await;
        self.runtime
            .kill_leftovers(Some(app), LEFTOVER_GRACE)
            .await?;
        let removed = self.runtime.remove_app(app, volumes).await?;
        // Its certificates: none is renewed for a host nobody serves.
        if let (Some(config), Some(certs)) = (&config, self.certificates.get()) {
            for (host, _) in crate::certificates::tls_hosts(config) {
                if let Err(e) = certs.manager.remove(&host) {
                    tracing::warn!(host, error = %e, "could not remove a certificate");
                }
            }
        }
        self.store.remove_app(row.id)?;
        self.progressive
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(app);
        tracing::info!(
            app,
            containers = removed.containers.len(),
            images = removed.images.len(),
            volumes = removed.volumes.len(),
            kept_volumes = removed.kept_volumes.len(),
            "removed app"
        );
        Ok(removed)
    }
}
