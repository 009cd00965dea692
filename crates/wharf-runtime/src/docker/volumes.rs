//! Volumes and published ports of containers, instances and accessories
//! alike; `wharf volumes`; copying a directory out of a release's image.
//!
//! * A named volume `NAME` of app `APP` is the engine's volume
//!   `wharf-APP-NAME`, created on first use with the labels
//!   `wharf.data-dir`, `wharf.app` and `wharf.volume` (and `wharf.accessory`
//!   when an accessory made it). Instances of every release mount the same
//!   one, so its data outlives releases, rollbacks and restarts; only
//!   `wharf volumes remove` and `wharf apps remove --volumes` delete it.
//! * A bind mounts a host path; the engine creates a missing directory.

use std::collections::HashMap;
use std::path::Path;

use bollard::models::{ContainerCreateBody, Mount, MountType, PortBinding, VolumeCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, DownloadFromContainerOptionsBuilder,
};
use futures_util::StreamExt;

use super::instance::unique_suffix;
use super::{
    DockerError, Inner, LABEL_ACCESSORY, LABEL_APP, LABEL_DATA_DIR, blocking, check_app,
    check_name, is_conflict, is_not_found,
};
use crate::{PortMapping, RuntimeError, VolumeInfo, VolumeMount, VolumeSource, release};

/// On named volumes: the name in `wharf.toml`.
pub const LABEL_VOLUME: &str = "wharf.volume";

/// The engine's name of named volume `volume` of `app`.
pub fn volume_name(app: &str, volume: &str) -> String {
    format!("wharf-{app}-{volume}")
}

/// Exposed ports and their host bindings for `ports`.
pub(super) fn port_bindings(
    ports: &[PortMapping],
) -> (Vec<String>, HashMap<String, Option<Vec<PortBinding>>>) {
    let mut exposed = Vec::new();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for port in ports {
        let key = format!("{}/{}", port.container_port, port.protocol);
        if !exposed.contains(&key) {
            exposed.push(key.clone());
        }
        bindings
            .entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: Some(port.host_ip.clone()),
                host_port: Some(port.host_port.to_string()),
            });
    }
    (exposed, bindings)
}

impl Inner {
    /// The engine's mounts for `volumes` of `app`, creating named volumes
    /// that do not exist yet (`accessory`: the one that uses them, if any).
    pub(super) async fn mounts(
        &self,
        app: &str,
        volumes: &[VolumeMount],
        accessory: Option<&str>,
    ) -> Result<Vec<Mount>, RuntimeError> {
        let mut mounts = Vec::new();
        for volume in volumes {
            let (typ, source) = match &volume.source {
                VolumeSource::Named(name) => {
                    check_name("volume name", name)?;
                    let full = volume_name(app, name);
                    self.ensure_volume(&full, app, name, accessory).await?;
                    (MountType::VOLUME, full)
                }
                VolumeSource::Bind(path) => (MountType::BIND, path.to_string_lossy().into_owned()),
            };
            mounts.push(Mount {
                target: Some(volume.target.clone()),
                source: Some(source),
                typ: Some(typ),
                read_only: Some(volume.read_only),
                ..Default::default()
            });
        }
        Ok(mounts)
    }

    /// Creates named volume `full` unless it exists (and refuses another
    /// server's).
    async fn ensure_volume(
        &self,
        full: &str,
        app: &str,
        name: &str,
        accessory: Option<&str>,
    ) -> Result<(), DockerError> {
        match self.docker.inspect_volume(full).await {
            Ok(volume) => return self.check_owner("volume", full, app, Some(&volume.labels)),
            Err(err) if is_not_found(&err) => {}
            Err(err) => return Err(DockerError::api(format!("inspect volume {full}"), err)),
        }
        let mut labels = HashMap::from([
            (LABEL_DATA_DIR.to_owned(), self.data_dir_label()),
            (LABEL_APP.to_owned(), app.to_owned()),
            (LABEL_VOLUME.to_owned(), name.to_owned()),
        ]);
        if let Some(accessory) = accessory {
            labels.insert(LABEL_ACCESSORY.to_owned(), accessory.to_owned());
        }
        let request = VolumeCreateRequest {
            name: Some(full.to_owned()),
            labels: Some(labels),
            ..Default::default()
        };
        match self.docker.create_volume(request).await {
            Ok(_) => Ok(()),
            // Two instances starting at once: the other one made it.
            Err(err) if is_conflict(&err) => Ok(()),
            Err(err) => Err(DockerError::api(format!("create volume {full}"), err)),
        }
    }

    /// The named volumes of `app` on this engine made by this server, with
    /// their sizes when the engine's files can be read (as root).
    pub(super) async fn app_volumes(&self, app: &str) -> Result<Vec<VolumeInfo>, RuntimeError> {
        check_app(app)?;
        let labels = vec![
            format!("{LABEL_DATA_DIR}={}", self.data_dir_label()),
            format!("{LABEL_APP}={app}"),
        ];
        let prefix = volume_name(app, "");
        let mut out = Vec::new();
        for full in self.volumes_labelled(labels).await? {
            let info = match self.docker.inspect_volume(&full).await {
                Ok(info) => info,
                Err(err) if is_not_found(&err) => continue,
                Err(err) => {
                    return Err(DockerError::api(format!("inspect volume {full}"), err).into());
                }
            };
            let name = info
                .labels
                .get(LABEL_VOLUME)
                .cloned()
                .or_else(|| full.strip_prefix(&prefix).map(str::to_owned))
                .unwrap_or_else(|| full.clone());
            let mountpoint = std::path::PathBuf::from(&info.mountpoint);
            let size_bytes = blocking("measure volume", &mountpoint.clone(), move || {
                Ok(std::fs::read_dir(&mountpoint)
                    .is_ok()
                    .then(|| crate::volumes::dir_size(&mountpoint)))
            })
            .await?;
            out.push(VolumeInfo {
                name,
                location: full,
                size_bytes,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Removes named volume `name` of `app` if this server made it.
    pub(super) async fn remove_app_volume(
        &self,
        app: &str,
        name: &str,
    ) -> Result<bool, RuntimeError> {
        check_app(app)?;
        check_name("volume name", name)?;
        let full = volume_name(app, name);
        match self.docker.inspect_volume(&full).await {
            Ok(info) => self.check_owner("volume", &full, app, Some(&info.labels))?,
            Err(err) if is_not_found(&err) => return Ok(false),
            Err(err) => return Err(DockerError::api(format!("inspect volume {full}"), err).into()),
        }
        Ok(self.remove_volume(&full).await?)
    }

    /// The names of the volumes carrying every one of `labels`.
    pub(super) async fn volumes_labelled(
        &self,
        labels: Vec<String>,
    ) -> Result<Vec<String>, DockerError> {
        let filters = HashMap::from([("label", labels)]);
        let options = bollard::query_parameters::ListVolumesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let listed = self
            .docker
            .list_volumes(Some(options))
            .await
            .map_err(|err| DockerError::api("list volumes", err))?;
        Ok(listed
            .volumes
            .into_iter()
            .flatten()
            .map(|v| v.name)
            .collect())
    }

    /// Removes a named volume; a missing one is fine, one in use is an
    /// error that says so. Whether it was there.
    pub(super) async fn remove_volume(&self, volume: &str) -> Result<bool, DockerError> {
        let options = bollard::query_parameters::RemoveVolumeOptionsBuilder::default().build();
        match self.docker.remove_volume(volume, Some(options)).await {
            Ok(()) => Ok(true),
            Err(err) if is_not_found(&err) => Ok(false),
            Err(err) if is_conflict(&err) => Err(DockerError::api(
                format!("remove volume {volume} (another container uses it)"),
                err,
            )),
            Err(err) => Err(DockerError::api(format!("remove volume {volume}"), err)),
        }
    }

    /// Copies directory `path` of `image` into `dest` (made anew): a
    /// container is created from the image, never started, and its
    /// archive of `path` unpacked. A missing `path` gives an empty `dest`.
    pub(super) async fn copy_out_of_image(
        &self,
        app: &str,
        image: &str,
        path: &str,
        dest: &Path,
    ) -> Result<(), RuntimeError> {
        let name = format!("wharf-{app}-copy-{}", unique_suffix());
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            labels: Some(HashMap::from([
                (LABEL_DATA_DIR.to_owned(), self.data_dir_label()),
                (LABEL_APP.to_owned(), app.to_owned()),
            ])),
            // Never started; some images have neither CMD nor ENTRYPOINT.
            cmd: Some(vec!["true".to_owned()]),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        self.docker
            .create_container(Some(options), body)
            .await
            .map_err(|err| DockerError::api(format!("create container {name}"), err))?;
        let archive = self.download(&name, path).await;
        let removed = self.remove_container(&name).await;
        let archive = archive?;
        removed?;
        let dest = dest.to_owned();
        blocking("unpack assets into", &dest.clone(), move || {
            release::remove(&dest)?;
            std::fs::create_dir_all(&dest)
                .map_err(|err| RuntimeError::io("create directory", &dest, err))?;
            if let Some(archive) = archive {
                unpack_stripped(&archive, &dest)
                    .map_err(|err| RuntimeError::io("unpack assets into", &dest, err))?;
            }
            Ok(())
        })
        .await
    }

    /// The tar archive of `path` in container `name`; `None` if missing.
    async fn download(&self, name: &str, path: &str) -> Result<Option<Vec<u8>>, DockerError> {
        let options = DownloadFromContainerOptionsBuilder::new()
            .path(&format!("{}/.", path.trim_end_matches('/')))
            .build();
        let mut stream = self.docker.download_from_container(name, Some(options));
        let mut archive = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => archive.extend_from_slice(&bytes),
                Err(err) if is_not_found(&err) => return Ok(None),
                Err(err) => {
                    return Err(DockerError::api(format!("copy {path} out of {name}"), err));
                }
            }
        }
        Ok(Some(archive))
    }
}

/// Unpacks `archive` (of `dir/.`, whose entries start with `./` or the
/// directory's own name) into `dest`, without its first path component.
///
/// Only files and directories are unpacked: links (and special files) are
/// left out, so no entry can lead a later one outside `dest` (an image's
/// `x -> /etc` followed by `x/passwd`), and `dest` is made anew by the
/// caller, so it holds no link of its own.
fn unpack_stripped(archive: &[u8], dest: &Path) -> std::io::Result<()> {
    let mut tar = tar::Archive::new(archive);
    for entry in tar.entries()? {
        let mut entry = entry?;
        if !matches!(
            entry.header().entry_type(),
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::Directory
        ) {
            continue;
        }
        let path = entry.path()?.into_owned();
        let rest: std::path::PathBuf = path.components().skip(1).collect();
        let escapes = rest
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)));
        if rest.as_os_str().is_empty() || escapes {
            continue;
        }
        let target = dest.join(&rest);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        entry.unpack(&target)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_exposed_once_and_bound_each() {
        let port = |ip: &str, host: u16, container: u16, proto: &str| PortMapping {
            host_ip: ip.into(),
            host_port: host,
            container_port: container,
            protocol: proto.into(),
        };
        let (exposed, bindings) = port_bindings(&[
            port("127.0.0.1", 5432, 5432, "tcp"),
            port("0.0.0.0", 15432, 5432, "tcp"),
            port("127.0.0.1", 53, 53, "udp"),
        ]);
        assert_eq!(exposed, ["5432/tcp", "53/udp"]);
        assert_eq!(bindings["5432/tcp"].as_ref().unwrap().len(), 2);
    }

    #[test]
    fn links_in_an_image_cannot_lead_outside() {
        let outside = tempfile::tempdir().expect("tempdir");
        let mut builder = tar::Builder::new(Vec::new());
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        builder
            .append_link(&mut link, "assets/x", outside.path())
            .expect("link");
        let mut file = tar::Header::new_gnu();
        file.set_size(5);
        file.set_mode(0o644);
        builder
            .append_data(&mut file, "assets/x/owned", &b"owned"[..])
            .expect("file");
        let archive = builder.into_inner().expect("archive");
        let dest = tempfile::tempdir().expect("tempdir");
        unpack_stripped(&archive, dest.path()).expect("unpack");
        assert!(!outside.path().join("owned").exists());
        assert!(!dest.path().join("x").is_symlink());
    }

    #[test]
    fn archives_unpack_without_their_top_directory() {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, body) in [("assets/app-1.css", "a"), ("assets/js/app-2.js", "b")] {
            let mut header = tar::Header::new_gnu();
            header.set_size(body.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, path, body.as_bytes())
                .unwrap();
        }
        let archive = builder.into_inner().unwrap();
        let dest = tempfile::tempdir().unwrap();
        unpack_stripped(&archive, dest.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(dest.path().join("js/app-2.js")).unwrap(),
            "b"
        );
        assert!(dest.path().join("app-1.css").is_file());
    }
}
