//! Accessories: long-lived containers next to an app (a database, a
//! queue), kept across the app's deploys and the server's restarts.
//!
//! * The container is `wharf-<app>-<name>`, labelled `wharf.data-dir`,
//!   `wharf.app`, `wharf.accessory=<name>` and `wharf.spec=<hash>`: a hash
//!   of the whole spec (image, command, env values included, ports,
//!   volumes, health, limits), so a changed spec is noticed without keeping
//!   (or showing) env values anywhere else.
//! * It joins the app's network `wharf-<app>` with its name as alias: the
//!   app's containers reach it as `<name>`. Its engine restart policy is
//!   `unless-stopped`: it lives independently of the wharf server, and
//!   [`crate::Runtime::kill_leftovers`] and [`crate::Runtime::prune`] never
//!   touch it.
//! * Named volumes are `wharf-<app>-<volume>`, created with the same labels
//!   if missing; they survive the container (only `remove_accessory` with
//!   `volumes` deletes them).
//! * Its image is `image`, or, with `build`, one built from the app's source
//!   and tagged `wharf/<app>:accessory-<name>` (when missing, or on every
//!   boot with `rebuild`); the spec hash then covers the image id, so a
//!   changed build recreates the container.
//! * Booting: running and unchanged → left alone; stopped and unchanged →
//!   started; changed → the container (never a volume) is replaced. Then
//!   [`Inner::boot_accessory`] waits for the engine's health check to pass
//!   (or, without one, for the container to stay up ~1 s); an exit, a
//!   restart or the timeout fails the boot with the container's last output.
//!   A container that exited is then stopped, so the engine does not
//!   restart it in a loop; one still starting when the timeout passes is
//!   left running (a database may be recovering).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointSettings, HealthConfig,
    HealthStatusEnum, HostConfig, NetworkingConfig, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    EventsOptionsBuilder, InspectContainerOptions, LogsOptionsBuilder,
};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::build::BuildFor;
use super::volumes::{port_bindings, volume_name};
use super::{
    DockerError, Inner, LABEL_ACCESSORY, LABEL_APP, LABEL_DATA_DIR, LABEL_SPEC, apply_limits, argv,
    check_app, check_name, env_list, forward_lines, is_not_found, network_name,
};
use crate::logs::LogSource;
use crate::{AccessoryBuild, AccessorySpec, AccessoryStatus, LogLine, RuntimeError, VolumeSource};

/// How long `boot_accessory` waits without a health check.
const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(30);
/// Without a health check, up this long counts as started.
const UP_FOR: Duration = Duration::from_secs(1);
/// How often the container is inspected while booting.
const POLL: Duration = Duration::from_millis(250);
/// Output lines in the error of a failed boot.
const FAILURE_TAIL: usize = 30;
/// The stop timeout of an accessory (databases want time to shut down).
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The container of accessory `name` of `app`.
pub fn accessory_container(app: &str, name: &str) -> String {
    format!("wharf-{app}-{name}")
}

/// The tag of an accessory's image built from the app's source.
pub fn accessory_image_tag(app: &str, name: &str) -> String {
    format!("wharf/{app}:accessory-{name}")
}

/// FNV-1a (64 bit): stable across Rust versions and runs (unlike std's
/// `DefaultHasher`), so an unchanged spec keeps its container after a
/// wharf upgrade. Collisions only matter between two specs of one
/// accessory, where 64 bits are plenty.
#[derive(Debug)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// A field, length first, so `("ab", "c")` and `("a", "bc")` differ.
    fn field(&mut self, value: &str) {
        self.bytes(&(value.len() as u64).to_le_bytes());
        self.bytes(value.as_bytes());
    }
}

/// The hash of everything the container is created from.
fn spec_hash(spec: &AccessorySpec) -> String {
    let mut h = Fnv::new();
    // Bump when the container layout changes, to recreate old ones.
    h.field("wharf-accessory-v1");
    h.field(&spec.app);
    h.field(&spec.name);
    h.field(&spec.image);
    h.field(spec.command.as_deref().unwrap_or("\0none"));
    h.field(&spec.env.len().to_string());
    for (key, value) in &spec.env {
        h.field(key);
        h.field(value);
    }
    h.field(&spec.ports.len().to_string());
    for p in &spec.ports {
        h.field(&format!(
            "{} {} {} {}",
            p.host_ip, p.host_port, p.container_port, p.protocol
        ));
    }
    h.field(&spec.volumes.len().to_string());
    for v in &spec.volumes {
        let source = match &v.source {
            VolumeSource::Named(name) => format!("named {name}"),
            VolumeSource::Bind(path) => format!("bind {}", path.display()),
        };
        h.field(&source);
        h.field(&v.target);
        h.field(if v.read_only { "ro" } else { "rw" });
    }
    // Added after v1: only hashed when set, so existing containers stay.
    if !spec.aliases.is_empty() {
        h.field(&format!("aliases {}", spec.aliases.join(" ")));
    }
    match &spec.health {
        Some(health) => h.field(&format!(
            "{:?} {:?} {:?} {} {:?}",
            health.command, health.interval, health.timeout, health.retries, health.start_timeout
        )),
        None => h.field("\0none"),
    }
    h.field(&format!(
        "{:?} {:?}",
        spec.limits.memory_bytes,
        spec.limits.cpus.map(f64::to_bits)
    ));
    format!("{:016x}", h.0)
}

/// Nanoseconds for the engine; zero means "the engine's default".
fn nanos(d: Duration) -> Option<i64> {
    (!d.is_zero()).then(|| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn check_accessory(app: &str, name: &str) -> Result<(), RuntimeError> {
    check_app(app)?;
    check_name("accessory name", name)
}

/// "running", "exited", … of an inspected container.
fn state_of(info: &ContainerInspectResponse) -> String {
    info.state
        .as_ref()
        .and_then(|s| s.status)
        .map(|s| s.to_string())
        .unwrap_or_default()
}

/// "healthy", "unhealthy", "starting", or `None` without a health check.
fn health_of(info: &ContainerInspectResponse) -> Option<String> {
    let status = info.state.as_ref()?.health.as_ref()?.status?;
    match status {
        HealthStatusEnum::EMPTY | HealthStatusEnum::NONE => None,
        other => Some(other.to_string()),
    }
}

impl Inner {
    /// The container to create for `spec`.
    async fn accessory_body(
        &self,
        spec: &AccessorySpec,
        hash: &str,
    ) -> Result<ContainerCreateBody, RuntimeError> {
        let what = format!("accessory {} of {}", spec.name, spec.app);
        let cmd = match &spec.command {
            Some(command) => argv(&what, command)?,
            None => None,
        };
        let network = network_name(&spec.app);
        let mut labels = self.accessory_labels(&spec.app, &spec.name);
        labels.insert(LABEL_SPEC.to_owned(), hash.to_owned());
        let (exposed, bindings) = port_bindings(&spec.ports);
        let mounts = self
            .mounts(&spec.app, &spec.volumes, Some(&spec.name))
            .await?;
        let healthcheck = match &spec.health {
            Some(health) => {
                let words =
                    argv(&format!("health check of {what}"), &health.command)?.unwrap_or_default();
                let mut test = vec!["CMD".to_owned()];
                test.extend(words);
                Some(HealthConfig {
                    test: Some(test),
                    interval: nanos(health.interval),
                    timeout: nanos(health.timeout),
                    retries: Some(i64::from(health.retries)),
                    // Failures while it starts do not count towards `retries`.
                    start_period: nanos(health.start_timeout),
                    ..Default::default()
                })
            }
            None => None,
        };
        let mut host_config = HostConfig {
            network_mode: Some(network.clone()),
            port_bindings: Some(bindings),
            mounts: Some(mounts),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            ..Default::default()
        };
        apply_limits(&mut host_config, &spec.limits);
        let mut aliases = vec![spec.name.clone()];
        aliases.extend(spec.aliases.iter().cloned());
        let endpoint = EndpointSettings {
            aliases: Some(aliases),
            ..Default::default()
        };
        Ok(ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd,
            env: Some(env_list(&spec.env, &[])),
            labels: Some(labels),
            exposed_ports: Some(exposed),
            healthcheck,
            host_config: Some(host_config),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(network, endpoint)])),
            }),
            ..Default::default()
        })
    }

    fn accessory_labels(&self, app: &str, name: &str) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_DATA_DIR.to_owned(), self.data_dir_label()),
            (LABEL_APP.to_owned(), app.to_owned()),
            (LABEL_ACCESSORY.to_owned(), name.to_owned()),
        ])
    }

    /// The accessory's container, if it exists (and is ours).
    async fn inspect_accessory(
        &self,
        name: &str,
    ) -> Result<Option<ContainerInspectResponse>, RuntimeError> {
        match self
            .docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
        {
            Ok(info) => {
                let labels = info.config.as_ref().and_then(|c| c.labels.as_ref());
                let app = labels
                    .and_then(|l| l.get(LABEL_APP))
                    .cloned()
                    .unwrap_or_default();
                self.check_owner("container", name, &app, labels)?;
                let accessory = labels.is_some_and(|l| l.contains_key(LABEL_ACCESSORY));
                if !self.is_ours(labels) || !accessory {
                    return Err(DockerError::Foreign {
                        name: name.to_owned(),
                        data_dir: self.data_dir.clone(),
                        what: "accessory",
                    }
                    .into());
                }
                Ok(Some(info))
            }
            Err(err) if is_not_found(&err) => Ok(None),
            Err(err) => Err(DockerError::api(format!("inspect container {name}"), err).into()),
        }
    }

    pub(super) async fn boot_accessory(
        &self,
        spec: &AccessorySpec,
    ) -> Result<AccessoryStatus, RuntimeError> {
        check_accessory(&spec.app, &spec.name)?;
        let built;
        let (spec, hash) = match &spec.build {
            Some(build) => {
                let id = self.accessory_image(spec, build).await?;
                // The hash covers the image id (a changed image is a changed
                // spec); the container names the tag, for people to read.
                let hash = spec_hash(&AccessorySpec {
                    image: id,
                    ..spec.clone()
                });
                built = AccessorySpec {
                    image: accessory_image_tag(&spec.app, &spec.name),
                    ..spec.clone()
                };
                (&built, hash)
            }
            None => (spec, spec_hash(spec)),
        };
        let container = accessory_container(&spec.app, &spec.name);
        self.ensure_network(&spec.app).await?;
        // Exits from now on are this boot's (see `exit_code_since`).
        let since = SystemTime::now();
        let mut fresh = true;
        let existing = self.inspect_accessory(&container).await?;
        let same = existing.as_ref().is_some_and(|info| {
            info.config
                .as_ref()
                .and_then(|c| c.labels.as_ref())
                .and_then(|l| l.get(LABEL_SPEC))
                .is_some_and(|h| *h == hash)
        });
        match existing {
            Some(info) if same => {
                let running = info.state.as_ref().and_then(|s| s.running) == Some(true);
                if running {
                    fresh = false;
                } else {
                    tracing::info!(accessory = %container, "starting stopped accessory");
                    self.start_accessory_container(&container).await?;
                }
            }
            existing => {
                if existing.is_some() {
                    tracing::info!(accessory = %container, "accessory spec changed; recreating its container (volumes are kept)");
                    self.remove_container(&container).await?;
                }
                self.ensure_image(&spec.image).await?;
                let body = self.accessory_body(spec, &hash).await?;
                let options = bollard::query_parameters::CreateContainerOptionsBuilder::default()
                    .name(&container)
                    .build();
                self.docker
                    .create_container(Some(options), body)
                    .await
                    .map_err(|err| {
                        DockerError::api(format!("create container {container}"), err)
                    })?;
                tracing::info!(accessory = %container, image = %spec.image, "created accessory");
                self.start_accessory_container(&container).await?;
            }
        }
        self.wait_accessory(spec, &container, since, fresh).await
    }

    /// The id of the image `build` makes for `spec`: built now if it must
    /// be (see [`AccessoryBuild::rebuild`]), else the one tagged before.
    async fn accessory_image(
        &self,
        spec: &AccessorySpec,
        build: &AccessoryBuild,
    ) -> Result<String, RuntimeError> {
        let tag = accessory_image_tag(&spec.app, &spec.name);
        if !build.rebuild {
            match self.docker.inspect_image(&tag).await {
                Ok(image) => {
                    if let Some(id) = image.id {
                        return Ok(id);
                    }
                }
                Err(err) if is_not_found(&err) => {}
                Err(err) => {
                    return Err(DockerError::api(format!("inspect image {tag}"), err).into());
                }
            }
        }
        let of = BuildFor::Accessory {
            app: &spec.app,
            name: &spec.name,
        };
        self.build_image(&build.dir, &build.build, &tag, of).await
    }

    async fn start_accessory_container(&self, container: &str) -> Result<(), DockerError> {
        match self.docker.start_container(container, None).await {
            Ok(()) => Ok(()),
            Err(err) if super::is_not_modified(&err) => Ok(()),
            Err(err) => Err(DockerError::api(
                format!("start container {container}"),
                err,
            )),
        }
    }

    /// Waits until the accessory is healthy (or, without a health check,
    /// up for [`UP_FOR`]). `fresh`: started by this boot at `since`, so any
    /// engine restart is a failure.
    async fn wait_accessory(
        &self,
        spec: &AccessorySpec,
        container: &str,
        since: SystemTime,
        fresh: bool,
    ) -> Result<AccessoryStatus, RuntimeError> {
        let timeout = spec
            .health
            .as_ref()
            .map_or(DEFAULT_START_TIMEOUT, |h| h.start_timeout);
        let deadline = Instant::now() + timeout;
        let mut first: Option<(Option<String>, Option<i64>)> = None;
        let mut up_since: Option<Instant> = None;
        loop {
            let info = self
                .docker
                .inspect_container(container, None::<InspectContainerOptions>)
                .await
                .map_err(|err| DockerError::api(format!("inspect container {container}"), err))?;
            let state = info.state.clone().unwrap_or_default();
            let run = (state.started_at.clone(), info.restart_count);
            let first_run = first.get_or_insert_with(|| run.clone());
            let status = self.status_from(spec, container, &info);
            let restarted = *first_run != run || (fresh && info.restart_count.unwrap_or(0) > 0);
            if state.running != Some(true) || state.restarting == Some(true) || restarted {
                // The engine restarts it at once (unless-stopped), resetting
                // the state's exit code: its events keep the real one.
                let id = info.id.as_deref().unwrap_or(container);
                let code = match self.exit_code_since(id, since).await {
                    Some(code) => Some(code),
                    None => state.exit_code.filter(|_| state.running != Some(true)),
                };
                let reason = match code {
                    _ if state.oom_killed == Some(true) => {
                        "was killed for using more memory than its limit".to_owned()
                    }
                    Some(code) => format!("exited with code {code} while starting"),
                    None => "exited while starting".to_owned(),
                };
                let reason = format!(
                    "{reason}, and was stopped (fix it, then `wharf accessory boot {}`)",
                    spec.name
                );
                let err = self.accessory_failed(spec, container, reason).await;
                // Left alone, the engine would restart it in a loop; a
                // stopped container keeps its output for `accessory logs`.
                self.stop_container(container, STOP_TIMEOUT).await;
                return Err(err);
            }
            match &spec.health {
                Some(_) => {
                    if status.health.as_deref() == Some("healthy") {
                        return Ok(status);
                    }
                }
                None => {
                    let since = *up_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= UP_FOR {
                        return Ok(status);
                    }
                }
            }
            if Instant::now() >= deadline {
                let health = status.health.unwrap_or_else(|| "running".to_owned());
                let reason = format!("is not healthy after {timeout:?} (health: {health})");
                return Err(self.accessory_failed(spec, container, reason).await);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The exit code of the first exit of container `id` since `since`,
    /// from the engine's events.
    async fn exit_code_since(&self, id: &str, since: SystemTime) -> Option<i64> {
        let at = |t: SystemTime| {
            let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
            format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
        };
        let filters = HashMap::from([
            ("type", vec!["container".to_owned()]),
            ("container", vec![id.to_owned()]),
            ("event", vec!["die".to_owned()]),
        ]);
        let options = EventsOptionsBuilder::default()
            .since(&at(since))
            .until(&at(SystemTime::now()))
            .filters(&filters)
            .build();
        let mut events = self.docker.events(Some(options));
        let first = tokio::time::timeout(Duration::from_secs(5), events.next()).await;
        let event = first.ok()??.ok()?;
        event.actor?.attributes?.get("exitCode")?.parse().ok()
    }

    async fn accessory_failed(
        &self,
        spec: &AccessorySpec,
        container: &str,
        reason: String,
    ) -> RuntimeError {
        let tail = self.last_output(container, FAILURE_TAIL).await;
        DockerError::AccessoryFailed {
            app: spec.app.clone(),
            name: spec.name.clone(),
            container: container.to_owned(),
            reason,
            tail: tail.join("\n"),
        }
        .into()
    }

    /// The last `n` lines of a container's output (best effort).
    async fn last_output(&self, container: &str, n: usize) -> Vec<String> {
        let (tx, mut rx) = mpsc::channel(n.max(1) + 16);
        let source = LogSource {
            app: String::new(),
            release: 0,
            process: String::new(),
            instance: container.to_owned(),
        };
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&n.to_string())
            .build();
        let stream = self.docker.logs(container, Some(options));
        let collect = async {
            let mut lines = Vec::new();
            while let Some(line) = rx.recv().await {
                let line: LogLine = line;
                lines.push(line.line);
            }
            lines
        };
        let forward = async move {
            forward_lines(Box::pin(stream), &source, &tx).await;
        };
        let ((), lines) = tokio::join!(forward, collect);
        let skip = lines.len().saturating_sub(n);
        lines[skip..].to_vec()
    }

    fn status_from(
        &self,
        spec: &AccessorySpec,
        container: &str,
        info: &ContainerInspectResponse,
    ) -> AccessoryStatus {
        AccessoryStatus {
            name: spec.name.clone(),
            container: container.to_owned(),
            image: spec.image.clone(),
            state: state_of(info),
            health: health_of(info),
        }
    }

    pub(super) async fn stop_accessory(&self, app: &str, name: &str) -> Result<(), RuntimeError> {
        check_accessory(app, name)?;
        let container = accessory_container(app, name);
        if self.inspect_accessory(&container).await?.is_some() {
            self.stop_container(&container, STOP_TIMEOUT).await;
        }
        Ok(())
    }

    pub(super) async fn remove_accessory(
        &self,
        app: &str,
        name: &str,
        volumes: bool,
    ) -> Result<(), RuntimeError> {
        check_accessory(app, name)?;
        let container = accessory_container(app, name);
        let info = self.inspect_accessory(&container).await?;
        let mut names: Vec<String> = Vec::new();
        if let Some(info) = &info {
            // Volumes it mounts that are this app's (not some shared one).
            let prefix = volume_name(app, "");
            for mount in info.mounts.iter().flatten() {
                if mount.typ.as_deref() == Some("volume")
                    && let Some(volume) = mount.name.as_ref().filter(|n| n.starts_with(&prefix))
                {
                    names.push(volume.clone());
                }
            }
            // Stopped first, so a database shuts down cleanly.
            self.stop_container(&container, STOP_TIMEOUT).await;
            self.remove_container(&container).await?;
        }
        if !volumes {
            return Ok(());
        }
        names.extend(
            self.volumes_labelled(vec![
                format!("{LABEL_DATA_DIR}={}", self.data_dir_label()),
                format!("{LABEL_APP}={app}"),
                format!("{LABEL_ACCESSORY}={name}"),
            ])
            .await?,
        );
        names.sort();
        names.dedup();
        for volume in names {
            if self.remove_volume(&volume).await? {
                tracing::info!(volume, "removed accessory volume");
            }
        }
        Ok(())
    }

    pub(super) async fn accessory_status(
        &self,
        app: &str,
        name: &str,
    ) -> Result<AccessoryStatus, RuntimeError> {
        check_accessory(app, name)?;
        let container = accessory_container(app, name);
        Ok(match self.inspect_accessory(&container).await? {
            Some(info) => AccessoryStatus {
                name: name.to_owned(),
                image: info
                    .config
                    .as_ref()
                    .and_then(|c| c.image.clone())
                    .unwrap_or_default(),
                state: state_of(&info),
                health: health_of(&info),
                container,
            },
            None => AccessoryStatus {
                name: name.to_owned(),
                container,
                image: String::new(),
                state: "missing".to_owned(),
                health: None,
            },
        })
    }

    pub(super) async fn accessory_logs(
        &self,
        app: &str,
        name: &str,
        tail: usize,
        follow: bool,
        output: mpsc::Sender<LogLine>,
    ) -> Result<(), RuntimeError> {
        check_accessory(app, name)?;
        let container = accessory_container(app, name);
        if self.inspect_accessory(&container).await?.is_none() {
            return Err(DockerError::NoAccessory {
                app: app.to_owned(),
                name: name.to_owned(),
            }
            .into());
        }
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .follow(follow)
            .tail(&tail.to_string())
            .build();
        let source = LogSource {
            app: app.to_owned(),
            release: 0,
            process: name.to_owned(),
            instance: container.clone(),
        };
        let stream = self.docker.logs(&container, Some(options));
        forward_lines(stream.boxed(), &source, &output).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{Limits, PortMapping, VolumeMount};

    fn spec() -> AccessorySpec {
        AccessorySpec {
            app: "shop".into(),
            name: "db".into(),
            image: "postgres:16".into(),
            build: None,
            command: None,
            env: BTreeMap::from([("POSTGRES_PASSWORD".into(), "s3cret".into())]),
            ports: vec![PortMapping {
                host_ip: "127.0.0.1".into(),
                host_port: 5432,
                container_port: 5432,
                protocol: "tcp".into(),
            }],
            volumes: vec![VolumeMount {
                source: VolumeSource::Named("data".into()),
                target: "/var/lib/postgresql/data".into(),
                read_only: false,
            }],
            aliases: Vec::new(),
            health: None,
            limits: Limits::default(),
        }
    }

    #[test]
    fn the_hash_covers_the_spec_and_hides_values() {
        let a = spec_hash(&spec());
        assert_eq!(a, spec_hash(&spec()));
        assert_eq!(a.len(), 16);
        assert!(!a.contains("s3cret"));
        let mut changed = spec();
        changed
            .env
            .insert("POSTGRES_PASSWORD".into(), "other".into());
        assert_ne!(a, spec_hash(&changed));
        let mut changed = spec();
        changed.limits.memory_bytes = Some(1 << 30);
        assert_ne!(a, spec_hash(&changed));
        let mut changed = spec();
        changed.volumes[0].read_only = true;
        assert_ne!(a, spec_hash(&changed));
        let mut changed = spec();
        changed.aliases.push("shop_db".into());
        assert_ne!(a, spec_hash(&changed));
    }

    #[test]
    fn names() {
        assert_eq!(accessory_container("shop", "db"), "wharf-shop-db");
        assert_eq!(volume_name("shop", "data"), "wharf-shop-data");
        assert_eq!(nanos(Duration::ZERO), None);
        assert_eq!(nanos(Duration::from_secs(2)), Some(2_000_000_000));
    }
}
