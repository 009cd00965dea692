//! CI steps in containers (`[ci] image = "build"`): the app's image built
//! from the checkout of the commit, then each step `/bin/sh -c RUN` in a
//! new container of it.
//!
//! * The image is built as a deploy of the commit would build it (same
//!   Dockerfile, target, args, labels), so the deploy that follows green CI
//!   is a cache hit giving the same image. It is tagged
//!   `wharf/<app>:ci-<version>`; prune removes it once no kept release
//!   runs it.
//! * A step's container runs the image's entrypoint with the step as its
//!   command, in the image's working directory (where the Dockerfile put
//!   the code and its dependencies); it gets the step's env (`CI=true`,
//!   the app's env, `WHARF_COMMIT`…). It is on the engine's default
//!   network, or the host's when this runtime uses the host network: never
//!   on the app's network, so CI cannot reach the app's accessories (its
//!   production database).
//! * Output is read by attaching (the stream only, as `docker run` does)
//!   before the start, so nothing is missed, nor read twice.
//!   The step's shell sends its stderr to its stdout first (`exec 2>&1`),
//!   so they are one stream in the order written, as on the host (the
//!   engine keeps them apart without a terminal). A stop is the
//!   engine's (SIGTERM to the step's shell, SIGKILL after the timeout);
//!   the container is removed once the step is over, or when its handle is
//!   dropped. Containers are labelled `wharf.ci` (and with the data dir):
//!   those an earlier server left are removed by
//!   [`crate::Runtime::kill_leftovers`] when the next one starts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{AttachContainerOptionsBuilder, CreateContainerOptionsBuilder};
use futures_util::StreamExt;
use tokio_util::io::StreamReader;
use wharf_ci::{Exit, Launch, Launcher, Started, StepProcess};

use super::build::{BuildFor, tag_of};
use super::instance::unique_suffix;
use super::{
    DockerError, DockerNetwork, Inner, LABEL_APP, LABEL_CI, LABEL_DATA_DIR, check_app, lock,
};
use crate::{CiSource, RuntimeError};

impl Inner {
    pub(super) async fn ci_launcher(
        self: &Arc<Self>,
        source: &CiSource,
    ) -> Result<Arc<dyn Launcher>, RuntimeError> {
        let app = source.app.as_str();
        check_app(app)?;
        let tag = format!(
            "wharf/{app}:{}",
            tag_of(0, &format!("ci-{}", source.version))
        );
        let image = self
            .build_image(&source.dir, &source.build, &tag, BuildFor::Ci { app })
            .await?;
        Ok(Arc::new(ContainerLauncher {
            inner: self.clone(),
            app: app.to_owned(),
            image,
            tag,
        }))
    }
}

/// Runs each step in a new container of the CI image.
struct ContainerLauncher {
    inner: Arc<Inner>,
    app: String,
    /// The image id.
    image: String,
    tag: String,
}

impl std::fmt::Debug for ContainerLauncher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerLauncher")
            .field("app", &self.app)
            .field("image", &self.image)
            .field("tag", &self.tag)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Launcher for ContainerLauncher {
    async fn launch(&self, step: Launch<'_>) -> std::io::Result<Started> {
        let inner = &self.inner;
        let name = format!("wharf-{}-ci-{}", self.app, unique_suffix());
        let network_mode = match inner.network {
            DockerNetwork::AppBridge => None,
            DockerNetwork::Host => Some("host".to_owned()),
        };
        let body = ContainerCreateBody {
            image: Some(self.image.clone()),
            // Without a terminal the engine keeps stdout and stderr apart,
            // and their order is lost: one stream, as on the host.
            cmd: Some(vec![
                "/bin/sh".into(),
                "-c".into(),
                format!("exec 2>&1\n{}", step.command),
            ]),
            env: Some(step.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(HashMap::from([
                (LABEL_DATA_DIR.to_owned(), inner.data_dir_label()),
                (LABEL_APP.to_owned(), self.app.clone()),
                (LABEL_CI.to_owned(), step.name.to_owned()),
            ])),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            host_config: Some(HostConfig {
                network_mode,
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        lock(&inner.live).insert(name.clone());
        let mut process = ContainerStep {
            inner: inner.clone(),
            name: name.clone(),
            released: false,
        };
        inner
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(|err| io_error(&format!("create container {name}"), err))?;
        let attach = AttachContainerOptionsBuilder::default()
            .stream(true)
            // Attached before the start, the stream has it all; the logs
            // as well would repeat what a quick step wrote.
            .logs(false)
            .stdout(true)
            .stderr(true)
            .build();
        let attached = inner
            .docker
            .attach_container(&name, Some(attach))
            .await
            .map_err(|err| io_error(&format!("attach to container {name}"), err))?;
        if let Err(err) = inner.docker.start_container(&name, None).await {
            process.release().await;
            return Err(io_error(&format!("start container {name}"), err));
        }
        let bytes = attached.output.filter_map(|item| async move {
            match item {
                Ok(LogOutput::StdIn { .. }) => None,
                Ok(output) => Some(Ok(output.into_bytes())),
                Err(err) => Some(Err(std::io::Error::other(err))),
            }
        });
        Ok(Started {
            output: Box::new(StreamReader::new(Box::pin(bytes))),
            process: Box::new(process),
        })
    }

    fn describe(&self) -> String {
        format!("a container of {}", self.tag)
    }
}

fn io_error(what: &str, err: bollard::errors::Error) -> std::io::Error {
    std::io::Error::other(DockerError::api(what.to_owned(), err))
}

/// A step's container; removed once released, or when dropped.
struct ContainerStep {
    inner: Arc<Inner>,
    name: String,
    released: bool,
}

fn exit_of(code: Option<i64>) -> Option<Exit> {
    code.map(|code| Exit {
        code: Some(i32::try_from(code).unwrap_or(i32::MAX)),
        signal: None,
    })
}

#[async_trait]
impl StepProcess for ContainerStep {
    async fn wait(&mut self) -> Option<Exit> {
        exit_of(self.inner.wait_exit(&self.name).await)
    }

    async fn stop(&mut self, timeout: Duration) -> Option<Exit> {
        exit_of(self.inner.stop_container(&self.name, timeout).await)
    }

    /// Nothing outlives a container's first process.
    fn signal_rest(&mut self, _force: bool) {}

    async fn release(&mut self) {
        if self.released {
            return;
        }
        self.released = true;
        if let Err(err) = self.inner.remove_container(&self.name).await {
            tracing::warn!(container = %self.name, error = %err, "could not remove a CI container");
        }
        lock(&self.inner.live).remove(&self.name);
    }
}

impl Drop for ContainerStep {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let (inner, name) = (self.inner.clone(), std::mem::take(&mut self.name));
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = inner.remove_container(&name).await;
                lock(&inner.live).remove(&name);
            });
        }
    }
}
