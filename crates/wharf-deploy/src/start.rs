//! Starting a release: its instances spawned (each recorded in the store
//! before it exists; after a restart, a still-running one adopted), their
//! health checks waited for (a crash loop fails at once), and the live
//! release the routing table is built from — only once every instance
//! passed (Architecture Invariant 1). Also stopping instances, and the
//! health monitors that keep the table current.

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use futures_util::future::join_all;
use wharf_config::AppConfig;
use wharf_proxy::health::{self, HealthSpec};
use wharf_runtime::{InstanceSpec, RestartPolicy, Runtime, RuntimeEvent};
use wharf_store::{AppRow, InstanceState, NewInstance};

use crate::assets;
use crate::containers::{self, app_env};
use crate::deploy::{Run, humantime_fmt};
use crate::live::{LiveInstance, LiveRelease};
use crate::step::Step;
use crate::{DeployError, Engine};

/// A process without a health check is ready once it has stayed up this long.
pub(crate) const READY_GRACE: Duration = Duration::from_millis(1000);
/// A starting instance that exits this many times fails the deploy at once
/// instead of waiting out the health timeout.
const CRASHES_BEFORE_GIVING_UP: u32 = 3;
/// Log lines shown under a failed health check.
const TAIL_LINES: usize = 15;

impl Engine {
    /// Starts every instance of a release and waits until all are healthy.
    /// On failure the started instances are stopped again.
    pub(crate) async fn start_release(
        self: &Arc<Self>,
        run: &Run,
        number: i64,
        config: AppConfig,
        dir: &Path,
    ) -> Result<Arc<LiveRelease>, DeployError> {
        let total: u32 = config.processes.values().map(|p| p.instances).sum();
        run.step(
            self,
            Step::Starting,
            Some(format!(
                "{total} instance{} of release {number}",
                if total == 1 { "" } else { "s" }
            )),
        )
        .await?;
        let mut instances = Vec::new();
        self.runtime_for(&config).await?;
        let env = app_env(&config)?;
        // Subscribed before the first spawn, so no early crash is missed.
        let events = self.runtime.events();
        let started = self
            .spawn_instances(run, number, &config, &env, dir, &mut instances)
            .await;
        if let Err(e) = started {
            self.stop_instances(&instances).await;
            return Err(e);
        }
        let deadline = config.deploy.health_timeout;
        run.step(
            self,
            Step::HealthChecking,
            Some(format!("health timeout {}", humantime_fmt(deadline))),
        )
        .await?;
        let checks = join_all(instances.iter().map(|spec| {
            let health = config.processes[&spec.process]
                .health
                .as_ref()
                .map(health_spec);
            async move {
                let result = match &health {
                    Some(h) => health::wait_healthy(spec.addr(), h, deadline)
                        .await
                        .map_err(|e| e.to_string()),
                    None => {
                        tokio::time::sleep(READY_GRACE).await;
                        Ok(())
                    }
                };
                (spec.id.clone(), result)
            }
        }));
        let failed: Option<(String, String)> = tokio::select! {
            results = checks => results.into_iter().find_map(|(id, r)| r.err().map(|why| (id, why))),
            crashed = crash_loop(events, instances.iter().map(|s| s.id.clone()).collect()) => Some(crashed),
            () = run.cancel_requested() => {
                // Cancelled while it waited: the new instances go, the
                // release that serves keeps serving.
                self.stop_instances(&instances).await;
                run.check_cancel()?;
                None
            }
        };
        if let Some((id, reason)) = failed {
            let tail = match instances.iter().find(|s| s.id == id) {
                Some(spec) => self.instance_tail(&run.app.name, spec).await,
                None => Vec::new(),
            };
            let err = DeployError::Unhealthy(Box::new(crate::error::Unhealthy {
                app: run.app.name.clone(),
                release: number,
                instance: id,
                timeout: humantime_fmt(deadline),
                reason,
                serving: run.serving(self),
                tail,
            }));
            self.stop_instances(&instances).await;
            for spec in &instances {
                self.store
                    .set_instance_state(&spec.id, InstanceState::Failed)?;
            }
            return Err(err);
        }
        let mut live = Vec::new();
        for spec in instances {
            let process = &config.processes[&spec.process];
            let (backend, healthy) = match (&process.http, &process.health) {
                (Some(_), Some(h)) => {
                    let backend =
                        self.proxy()
                            .backend(&spec.id, spec.addr(), &run.app.name, number as u64);
                    (
                        Some(backend),
                        Some(health::monitor(spec.addr(), health_spec(h))),
                    )
                }
                _ => (None, None),
            };
            self.store
                .set_instance_state(&spec.id, InstanceState::Healthy)?;
            live.push(LiveInstance {
                spec,
                backend,
                healthy,
                up: Arc::new(AtomicBool::new(true)),
                watcher: None,
            });
        }
        let mut release = LiveRelease {
            number,
            config,
            instances: live,
        };
        self.watch_health(&mut release);
        self.refresh_instance_gauge(&run.app);
        Ok(Arc::new(release))
    }

    async fn spawn_instances(
        &self,
        run: &Run,
        number: i64,
        config: &AppConfig,
        app_env: &std::collections::BTreeMap<String, String>,
        dir: &Path,
        out: &mut Vec<InstanceSpec>,
    ) -> Result<(), DeployError> {
        for process in config.processes.values() {
            for index in 1..=process.instances {
                let id = format!("{}-r{number}-{}-{index}", run.app.name, process.name);
                let mut env = app_env.clone();
                env.extend(process.env.clone());
                // After a server restart, an instance of the serving release
                // that is still running is taken over where it stands.
                let adoptable = self.take_adoptable(&id);
                let port = match adoptable {
                    Some(port) => port,
                    None => free_port().map_err(DeployError::Port)?,
                };
                let mut spec = InstanceSpec {
                    id: id.clone(),
                    app: run.app.name.clone(),
                    release: number as u64,
                    process: process.name.clone(),
                    index,
                    command: process.command.clone(),
                    entrypoint: process.entrypoint.clone(),
                    workdir: dir.to_path_buf(),
                    env,
                    port,
                    container_port: process.port,
                    publish: process.http.is_some(),
                    volumes: process
                        .volumes
                        .iter()
                        .map(containers::volume_mount)
                        .chain(assets::mount_for(config, process, dir))
                        .collect(),
                    ports: process.ports.iter().map(containers::port_mapping).collect(),
                    stop_timeout: process.stop_timeout,
                    limits: containers::limits(process.memory, process.cpus),
                    restart: match process.restart {
                        wharf_config::Restart::Always => RestartPolicy::Always,
                        wharf_config::Restart::OnFailure => RestartPolicy::OnFailure,
                        wharf_config::Restart::Never => RestartPolicy::Never,
                    },
                };
                if adoptable.is_some() {
                    match self.runtime.adopt(spec.clone()).await {
                        Ok(Some(pid)) => {
                            self.store.set_instance_pid(&id, Some(pid))?;
                            self.store
                                .set_instance_state(&id, InstanceState::Starting)?;
                            tracing::info!(instance = %id, pid, "adopted a running instance");
                            out.push(spec);
                            continue;
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(instance = %id, error = %e, "could not adopt; starting it again")
                        }
                    }
                    spec.port = free_port().map_err(DeployError::Port)?;
                }
                let port = spec.port;
                // Recorded before it exists, so a crash right after the
                // spawn still knows what to look for.
                self.store.insert_instance(&NewInstance {
                    id: &id,
                    app_id: run.app.id,
                    release: number,
                    process: &process.name,
                    idx: index as i64,
                    port,
                })?;
                out.push(spec.clone());
                let pid = self.runtime.start(spec).await?;
                self.store.set_instance_pid(&id, Some(pid))?;
            }
        }
        Ok(())
    }

    /// Stops instances concurrently and records them stopped.
    pub(crate) async fn stop_instances(&self, specs: &[InstanceSpec]) {
        for s in specs {
            let _ = self
                .store
                .set_instance_state(&s.id, InstanceState::Stopping);
        }
        let stops = specs.iter().map(|s| async move {
            if let Err(e) = self.runtime.stop(&s.id).await {
                tracing::warn!(instance = %s.id, error = %e, "stop failed");
            }
            let _ = self.store.set_instance_state(&s.id, InstanceState::Stopped);
        });
        join_all(stops).await;
    }

    /// Republishes the table whenever a live instance's health changes.
    fn watch_health(self: &Arc<Self>, release: &mut LiveRelease) {
        for inst in &mut release.instances {
            let Some(mut rx) = inst.healthy.clone() else {
                continue;
            };
            let engine = Arc::downgrade(self);
            let id = inst.spec.id.clone();
            inst.watcher = Some(tokio::spawn(async move {
                while rx.changed().await.is_ok() {
                    let Some(engine) = engine.upgrade() else {
                        return;
                    };
                    let healthy = *rx.borrow_and_update();
                    let state = if healthy {
                        InstanceState::Healthy
                    } else {
                        InstanceState::Unhealthy
                    };
                    tracing::warn!(instance = %id, healthy, "instance health changed");
                    let _ = engine.store.set_instance_state(&id, state);
                    engine.routes.publish();
                }
            }));
        }
    }

    async fn instance_tail(&self, app: &str, spec: &InstanceSpec) -> Vec<String> {
        let lines = self
            .runtime
            .tail_logs(app, Some(&spec.process), 500)
            .await
            .unwrap_or_default();
        let mine: Vec<String> = lines
            .into_iter()
            .filter(|l| l.instance == spec.id)
            .map(|l| l.line)
            .collect();
        mine[mine.len().saturating_sub(TAIL_LINES)..].to_vec()
    }

    pub(crate) fn refresh_instance_gauge(&self, app: &AppRow) {
        let Ok(rows) = self.store.live_instances(Some(app.id)) else {
            return;
        };
        for state in [
            InstanceState::Starting,
            InstanceState::Healthy,
            InstanceState::Unhealthy,
            InstanceState::Restarting,
            InstanceState::Stopping,
        ] {
            let n = rows.iter().filter(|r| r.state == state).count();
            self.metrics
                .instances
                .get_or_create(&crate::metrics::InstanceLabels {
                    app: app.name.clone(),
                    state: state.to_string(),
                })
                .set(n as i64);
        }
    }
}

/// Resolves with the instance and a reason once one of `ids` has exited
/// [`CRASHES_BEFORE_GIVING_UP`] times.
async fn crash_loop(
    mut events: tokio::sync::broadcast::Receiver<RuntimeEvent>,
    ids: Vec<String>,
) -> (String, String) {
    let mut exits = std::collections::HashMap::<String, u32>::new();
    loop {
        match events.recv().await {
            Ok(RuntimeEvent::Exited {
                id, code, signal, ..
            }) if ids.contains(&id) => {
                let n = exits.entry(id.clone()).or_default();
                *n += 1;
                if *n >= CRASHES_BEFORE_GIVING_UP {
                    let how = match (code, signal) {
                        (Some(c), _) => format!("exit code {c}"),
                        (None, Some(s)) => format!("signal {s}"),
                        _ => "unknown status".into(),
                    };
                    return (
                        id,
                        format!("it exited {n} times while starting (last: {how})"),
                    );
                }
            }
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                return std::future::pending().await;
            }
        }
    }
}

pub(crate) fn health_spec(h: &wharf_config::HealthCheck) -> HealthSpec {
    HealthSpec {
        path: h.path.clone(),
        interval: h.interval,
        timeout: h.timeout,
        threshold: h.threshold,
    }
}

/// A port the kernel says is free right now on 127.0.0.1.
pub(crate) fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}
