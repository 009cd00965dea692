//! Pruning what releases leave in the engine: exited containers and the
//! images of releases that are gone.
//!
//! Only things labelled with this data dir are candidates. Containers:
//! exited, created or dead ones, except accessories (whatever their state:
//! a stopped database is kept) and the ones this runtime runs right now.
//! Images: those whose id is not the image of a kept release dir (two
//! releases of unchanged sources share one image, and a prebuilt image is
//! not labelled at all, so it is never pruned); an image built before
//! release images lost their `wharf.release` label is also kept while that
//! release is. A kept image loses the tags of releases that are gone. An
//! accessory's built image has no release: it goes once no container uses
//! it (a deploy builds it again if needed). An image still used by a
//! container is left for a later prune.

use std::collections::HashSet;

use bollard::models::ContainerSummaryStateEnum;

use super::build::read_release;
use super::{Inner, LABEL_ACCESSORY, LABEL_APP, LABEL_DATA_DIR, LABEL_RELEASE, blocking, lock};
use crate::{PruneReport, RuntimeError};

impl Inner {
    pub(super) async fn prune(&self, keep: &[(String, u64)]) -> Result<PruneReport, RuntimeError> {
        let mut report = PruneReport::default();
        self.prune_containers(&mut report).await?;

        let dirs: Vec<_> = keep
            .iter()
            .map(|(app, release)| self.release_dir(app, *release))
            .collect();
        let data_dir = self.data_dir.clone();
        let (kept_ids, kept_tags): (HashSet<String>, HashSet<String>) =
            blocking("read kept releases in", &data_dir, move || {
                let (mut ids, mut tags) = (HashSet::new(), HashSet::new());
                for read in dirs.iter().map(|d| read_release(d)) {
                    ids.extend(read.images);
                    tags.extend(read.tags);
                }
                Ok((ids, tags))
            })
            .await?;
        let kept: HashSet<(&str, String)> = keep
            .iter()
            .map(|(app, release)| (app.as_str(), release.to_string()))
            .collect();

        let label = format!("{LABEL_DATA_DIR}={}", self.data_dir_label());
        let images = self.images_where("label", vec![label]).await?;
        for image in images {
            let app = image
                .labels
                .get(LABEL_APP)
                .map(String::as_str)
                .unwrap_or("");
            let release = image.labels.get(LABEL_RELEASE).cloned().unwrap_or_default();
            if kept.contains(&(app, release)) || kept_ids.contains(&image.id) {
                // Kept, but releases that are gone may have tagged it too
                // (an unchanged rebuild is the same image): their tags go.
                for tag in &image.repo_tags {
                    if tag != "<none>:<none>"
                        && !kept_tags.contains(tag)
                        && self.remove_image(tag).await?
                    {
                        tracing::info!(tag, app, "pruned tag of a release that is gone");
                        report.images.push(tag.clone());
                    }
                }
                continue;
            }
            // Tags first: removing an id that has several tags is refused.
            for tag in &image.repo_tags {
                if tag != "<none>:<none>" {
                    self.remove_image(tag).await?;
                }
            }
            if self.remove_image(&image.id).await?
                || self.docker.inspect_image(&image.id).await.is_err()
            {
                tracing::info!(image = %image.id, app, "pruned image");
                report.reclaimed_bytes += u64::try_from(image.size).unwrap_or(0);
                report.images.push(
                    image
                        .repo_tags
                        .first()
                        .filter(|t| *t != "<none>:<none>")
                        .cloned()
                        .unwrap_or(image.id),
                );
            }
        }
        Ok(report)
    }

    async fn prune_containers(&self, report: &mut PruneReport) -> Result<(), RuntimeError> {
        let containers = self.our_containers(&[], true).await?;
        let live = lock(&self.live).clone();
        for container in containers {
            let stopped = matches!(
                container.state,
                Some(
                    ContainerSummaryStateEnum::EXITED
                        | ContainerSummaryStateEnum::CREATED
                        | ContainerSummaryStateEnum::DEAD
                )
            );
            let accessory = container
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(LABEL_ACCESSORY));
            let names: Vec<String> = container
                .names
                .unwrap_or_default()
                .iter()
                .map(|n| n.trim_start_matches('/').to_owned())
                .collect();
            if !stopped || accessory || names.iter().any(|n| live.contains(n)) {
                continue;
            }
            let Some(id) = container.id else { continue };
            self.remove_container(&id).await?;
            tracing::info!(container = %id, "pruned stopped container");
            report.reclaimed_bytes += container
                .size_rw
                .and_then(|s| u64::try_from(s).ok())
                .unwrap_or(0);
            report
                .containers
                .push(names.into_iter().next().unwrap_or(id));
        }
        Ok(())
    }
}
