//! Removing an app and everything the engine keeps of it (`wharf apps
//! remove`): every container labelled with this data dir and the app
//! (instances, tasks, accessories — an accessory is stopped first, so a
//! database shuts down cleanly), the images built for it (a prebuilt
//! image only loses wharf's tag), its network, its files, and — only when
//! asked — its named volumes, which are otherwise kept and listed.

use std::time::Duration;

use super::{
    DockerError, Inner, LABEL_ACCESSORY, LABEL_APP, LABEL_DATA_DIR, blocking, check_app,
    is_not_found, lock, network_name,
};
use crate::{RemovedApp, RuntimeError, release};

/// Time an accessory gets to shut down (databases want it).
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

impl Inner {
    pub(super) async fn remove_app(
        &self,
        app: &str,
        volumes: bool,
    ) -> Result<RemovedApp, RuntimeError> {
        check_app(app)?;
        let mut out = RemovedApp::default();
        let ours = vec![
            format!("{LABEL_DATA_DIR}={}", self.data_dir_label()),
            format!("{LABEL_APP}={app}"),
        ];

        for container in self.our_containers(&ours[1..], false).await? {
            let Some(id) = container.id else { continue };
            let name = container
                .names
                .unwrap_or_default()
                .first()
                .map(|n| n.trim_start_matches('/').to_owned())
                .unwrap_or_else(|| id.clone());
            let accessory = container
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(LABEL_ACCESSORY));
            if accessory {
                self.stop_container(&id, STOP_TIMEOUT).await;
            }
            self.remove_container(&id).await?;
            lock(&self.live).remove(&name);
            out.containers.push(name);
        }

        // Images built for the app's accessories (labelled with the app),
        // then every `wharf/<app>:…` tag: a release image built here goes
        // with its last tag, a prebuilt one only loses wharf's tag. (An
        // untagged image of a release that is gone names no app: `wharf
        // prune` removes it.)
        for image in self.images_where("label", ours.clone()).await? {
            for tag in image.repo_tags.iter().filter(|t| *t != "<none>:<none>") {
                self.remove_image(tag).await?;
            }
            if self.remove_image(&image.id).await? {
                out.images.push(
                    image
                        .repo_tags
                        .first()
                        .filter(|t| *t != "<none>:<none>")
                        .cloned()
                        .unwrap_or(image.id),
                );
            }
        }
        let tagged = self
            .images_where("reference", vec![format!("wharf/{app}")])
            .await?;
        for image in tagged {
            // Another server's (an app of the same name there) is not ours.
            let owner = image.labels.get(LABEL_DATA_DIR);
            if owner.is_some_and(|o| *o != self.data_dir_label()) {
                continue;
            }
            for tag in image
                .repo_tags
                .iter()
                .filter(|t| t.starts_with(&format!("wharf/{app}:")))
            {
                if self.remove_image(tag).await? {
                    out.images.push(tag.clone());
                }
            }
        }

        for volume in self.volumes_labelled(ours).await? {
            if !volumes {
                out.kept_volumes.push(volume);
            } else if self.remove_volume(&volume).await? {
                out.volumes.push(volume);
            }
        }

        let network = network_name(app);
        if let Ok(info) = self.docker.inspect_network(&network, None).await
            && self.is_ours(info.labels.as_ref())
        {
            match self.docker.remove_network(&network).await {
                Ok(()) => {}
                Err(err) if is_not_found(&err) => {}
                Err(err) => {
                    return Err(DockerError::api(format!("remove network {network}"), err).into());
                }
            }
        }

        let dir = self.app_dir(app);
        let target = dir.clone();
        blocking("remove the files of", &dir, move || {
            release::remove(&target)
        })
        .await?;
        Ok(out)
    }
}
