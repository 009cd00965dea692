//! Convergence after a crash, and the record of what the runtime does.
//!
//! A server killed at any point leaves: instance processes (its children,
//! now orphans), maybe a deploy with no outcome, and a store whose
//! `apps.current_release` says which release was serving at the last
//! commit point. [`Engine::recover`] closes open deploys as `interrupted`,
//! restores each app's serving release through the same start → health →
//! switch path a deploy uses — adopting the instances that are still
//! running (containers outlive the server; the docker runtime re-attaches
//! to them) and starting the missing ones — and then removes every other
//! instance of this data dir the runtimes find. The result: exactly one
//! release serves, nothing is orphaned.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use wharf_runtime::{Runtime, RuntimeEvent};
use wharf_store::{DeployKind, DeployOutcome, EventLevel, InstanceState, ReleaseStatus};

use crate::{DeployError, Engine};

/// How long leftovers get between SIGTERM and SIGKILL.
const LEFTOVER_GRACE: Duration = Duration::from_secs(5);

/// What [`Engine::recover`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryReport {
    /// Leftover processes killed.
    pub killed: usize,
    /// Deploys closed as interrupted.
    pub interrupted: Vec<i64>,
    /// (app, release) brought back.
    pub restored: Vec<(String, i64)>,
    /// (app, why) that could not be brought back.
    pub failed: Vec<(String, String)>,
}

impl Engine {
    /// Converges to the store's truth. Run once, before serving.
    pub async fn recover(self: &Arc<Self>) -> Result<RecoveryReport, DeployError> {
        let mut report = RecoveryReport::default();
        // Each app's runtime, from its serving release's config: a docker
        // app connects the docker runtime here, so its leftovers are seen.
        for app in self.store.apps()? {
            let Some(number) = app.current_release else {
                continue;
            };
            if let Ok(config) = self.stored_config(&app, number)
                && let Err(e) = self.runtime_for(&config).await
            {
                tracing::error!(app = %app.name, error = %e, "the app's runtime is not available");
            }
        }
        // What the store expected to run. Containers outlive the server, so
        // the serving release's may still be up: those are adopted by the
        // restore below instead of being started again.
        {
            let mut adoptable = self.adoptable.lock().unwrap_or_else(|e| e.into_inner());
            for row in self.store.live_instances(None)? {
                adoptable.insert(row.id.clone(), row.port);
                self.store
                    .set_instance_state(&row.id, InstanceState::Stopped)?;
            }
        }
        let mut dead_releases = Vec::new();
        for d in self.store.unfinished_deploys()? {
            let app = self.store.apps()?.into_iter().find(|a| a.id == d.app_id);
            let serving = app.as_ref().and_then(|a| a.current_release);
            let msg = format!(
                "the server stopped during `{}`; release {} is the one serving",
                d.state,
                serving.map_or_else(|| "none".to_owned(), |n| n.to_string())
            );
            self.store
                .finish_deploy(d.id, DeployOutcome::Interrupted, Some(&msg))?;
            self.store.add_event(
                Some(d.app_id),
                Some(d.id),
                EventLevel::Warn,
                &format!("{} {} interrupted: {msg}", d.kind, d.id),
            )?;
            report.interrupted.push(d.id);
            // A new release that never became the serving one is dead.
            if let (DeployKind::Deploy, Some(to), Some(app)) = (d.kind, d.to_release, &app)
                && Some(to) != serving
            {
                self.store
                    .set_release_status(app.id, to, ReleaseStatus::Failed, None)?;
                dead_releases.push((app.name.clone(), to));
            }
        }
        for app in self.store.apps()? {
            let Some(number) = app.current_release else {
                continue;
            };
            match self.restore(&app.name, number).await {
                Ok(_) => report.restored.push((app.name.clone(), number)),
                Err(e) => {
                    tracing::error!(app = %app.name, release = number, error = %e, "could not restore the serving release");
                    report.failed.push((app.name.clone(), e.to_string()));
                }
            }
        }
        self.adoptable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        // Everything of this data dir the runtimes run now and did not
        // adopt or start is a leftover (an interrupted deploy's instances,
        // older releases', a process runtime's orphans).
        let found = self.runtime.kill_leftovers(LEFTOVER_GRACE).await?;
        report.killed = found.len();
        if !found.is_empty() {
            tracing::warn!(
                count = found.len(),
                "removed instances left by an earlier server"
            );
        }
        for (app, release) in dead_releases {
            let _ = self.runtime.remove_release(&app, release as u64).await;
        }
        Ok(report)
    }

    /// Starts the serving release of `app` again and routes to it.
    async fn restore(
        self: &Arc<Self>,
        app: &str,
        number: i64,
    ) -> Result<crate::DeployReport, DeployError> {
        let app = self.store.app(app)?;
        let run = self.begin(app, DeployKind::Restore, Some(number), None)?;
        // The same path as a rollback: start the retained release, health, switch.
        self.run(run, move |engine, run| {
            Box::pin(engine.activate_steps(run, number))
        })
        .await
    }
}

/// Follows the runtime's events: records pids and exits, and keeps a
/// crashed serving instance out of the routing table until its restarted
/// process has passed its health check again.
pub(crate) async fn record_runtime_events(engine: Weak<Engine>) {
    let mut events = match engine.upgrade() {
        Some(e) => e.runtime.events(),
        None => return,
    };
    loop {
        let event = match events.recv().await {
            Ok(e) => e,
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "runtime events were missed");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let Some(engine) = engine.upgrade() else {
            return;
        };
        if let Err(e) = engine.on_runtime_event(&event) {
            tracing::error!(error = %e, "could not record a runtime event");
        }
    }
}

impl Engine {
    fn on_runtime_event(
        self: &Arc<Self>,
        event: &RuntimeEvent,
    ) -> Result<(), wharf_store::StoreError> {
        let store = &self.store;
        match event {
            RuntimeEvent::Started { id, pid, .. } => {
                store.set_instance_pid(id, Some(*pid))?;
                if let Some((release, i)) = self.routes.find(id)
                    && !release.instances[i].up.load(Ordering::Acquire)
                {
                    tokio::spawn(readmit(Arc::downgrade(self), release, i));
                }
            }
            RuntimeEvent::Exited {
                id,
                code,
                signal,
                restart_in,
            } => {
                if let Some((release, i)) = self.routes.find(id) {
                    release.instances[i].up.store(false, Ordering::Release);
                    self.routes.publish();
                }
                let app = store.instance(id)?.map(|r| r.app_id);
                let how = match (code, signal) {
                    (Some(c), _) => format!("with code {c}"),
                    (None, Some(s)) => format!("on signal {s}"),
                    _ => String::new(),
                };
                let next = restart_in.map_or_else(String::new, |d| {
                    format!("; restarting in {}", crate::deploy::humantime_fmt(d))
                });
                tracing::warn!(instance = %id, code, signal, "instance exited");
                store.add_event(
                    app,
                    None,
                    EventLevel::Warn,
                    &format!("instance {id} exited {how}{next}"),
                )?;
                if restart_in.is_some() {
                    store.set_instance_state(id, InstanceState::Restarting)?;
                }
            }
            RuntimeEvent::Stopped { .. } => {}
        }
        Ok(())
    }
}

/// Puts a restarted instance back in the table once it passes its health
/// check (Architecture Invariant 1 holds across restarts too). Gives up when
/// the instance is no longer serving (stopped, or its release replaced).
async fn readmit(engine: Weak<Engine>, release: Arc<crate::live::LiveRelease>, i: usize) {
    let inst = &release.instances[i];
    let health = release
        .config
        .processes
        .get(&inst.spec.process)
        .and_then(|p| p.health.as_ref())
        .map(crate::deploy::health_spec);
    let timeout = release.config.deploy.health_timeout;
    loop {
        let passed = match &health {
            Some(h) => wharf_proxy::health::wait_healthy(inst.spec.addr(), h, timeout)
                .await
                .is_ok(),
            None => {
                tokio::time::sleep(crate::deploy::READY_GRACE).await;
                true
            }
        };
        let Some(engine) = engine.upgrade() else {
            return;
        };
        let still_serving = engine
            .routes
            .find(&inst.spec.id)
            .is_some_and(|(r, _)| Arc::ptr_eq(&r, &release));
        if !still_serving {
            return;
        }
        if passed {
            inst.up.store(true, Ordering::Release);
            let _ = engine
                .store
                .set_instance_state(&inst.spec.id, InstanceState::Healthy);
            engine.routes.publish();
            tracing::info!(instance = %inst.spec.id, "restarted instance is healthy again");
            return;
        }
        let _ = engine
            .store
            .set_instance_state(&inst.spec.id, InstanceState::Unhealthy);
    }
}
