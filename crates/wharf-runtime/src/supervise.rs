//! Supervision of instances, shared by both runtimes.
//!
//! A runtime says how to run one instance through a [`Launcher`] (launch a
//! run, wait for it to exit, clean up after an exit, terminate it); the
//! supervisor here decides what happens around that, the same way for child
//! processes and containers:
//!
//! * an exit nobody asked for is reported as [`RuntimeEvent::Exited`], and
//!   the instance is launched again per its [`RestartPolicy`] after a backoff
//!   (100 ms doubling to 10 s, back to 100 ms after a run that lasted 30 s),
//!   reported as [`RuntimeEvent::Started`]; a launch that fails during a
//!   restart counts as another exit;
//! * an exit the policy does not restart (`Never`, or `OnFailure` after exit
//!   code 0) is reported with `restart_in: None`, and the instance ends
//!   [`InstanceState::Stopped`] (followed by a `Stopped` event);
//! * [`Supervisors::stop`] asks the supervisor through a watch channel; it
//!   terminates the current run (SIGTERM, grace, SIGKILL) and reports
//!   [`RuntimeEvent::Stopped`] before the call returns.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use crate::{InstanceId, InstanceState, RestartPolicy, RuntimeError, RuntimeEvent, procfs};

/// First restart delay after an unexpected exit.
pub(crate) const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// Longest restart delay.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A run this long before it exits restarts after [`INITIAL_BACKOFF`] again.
const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(30);

const EVENT_CAPACITY: usize = 1024;

/// How a run ended: exit code, or the signal that killed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl Exit {
    /// Whether `policy` starts the instance again after this exit. A run
    /// whose status is unknown (lost track of it) counts as a failure.
    fn restarts(&self, policy: RestartPolicy) -> bool {
        match policy {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => self.code != Some(0),
            RestartPolicy::Never => false,
        }
    }
}

/// How one runtime runs one instance. The futures must be cancel-safe where
/// the supervisor races them against a stop request (`wait`).
pub(crate) trait Launcher: Send + Sync + 'static {
    /// One run of the instance (a child, a container).
    type Run: Send + 'static;

    /// Starts a new run.
    fn launch(&self) -> impl Future<Output = Result<Self::Run, RuntimeError>> + Send;

    /// The pid reported for the run.
    fn pid(run: &Self::Run) -> u32;

    /// Resolves when the run exits on its own.
    fn wait(&self, run: &mut Self::Run) -> impl Future<Output = Exit> + Send;

    /// Cleans up after a run that exited (its output, its leftovers).
    fn reap(&self, run: Self::Run) -> impl Future<Output = ()> + Send;

    /// Stops a run: SIGTERM, then SIGKILL after `timeout`; cleans up like
    /// `reap`. Returns whether SIGKILL was needed.
    fn terminate(&self, run: Self::Run, timeout: Duration) -> impl Future<Output = bool> + Send;
}

/// The handle of one supervised instance.
#[derive(Debug)]
struct Handle {
    state: Mutex<InstanceState>,
    /// Set to `true` to ask the supervisor to stop the instance.
    stop: watch::Sender<bool>,
    /// Becomes `true` when the supervisor has finished.
    done: watch::Receiver<bool>,
}

/// Locks, recovering from poisoning (a panic elsewhere must not cascade).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The supervised instances of one runtime, and its event channel.
#[derive(Debug)]
pub(crate) struct Supervisors {
    instances: Mutex<HashMap<InstanceId, Arc<Handle>>>,
    events: broadcast::Sender<RuntimeEvent>,
}

impl Supervisors {
    pub(crate) fn new() -> Arc<Self> {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        Arc::new(Supervisors {
            instances: Mutex::new(HashMap::new()),
            events,
        })
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<RuntimeEvent> {
        self.events.subscribe()
    }

    fn emit(&self, event: RuntimeEvent) {
        // No subscriber is fine.
        let _ = self.events.send(event);
    }

    /// Claims `id` before its first run is launched, so two concurrent
    /// starts of one id cannot both launch. Dropping the reservation
    /// without [`Reservation::supervise`] releases the id.
    pub(crate) fn reserve(self: &Arc<Self>, id: &str) -> Result<Reservation, RuntimeError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (done_tx, done_rx) = watch::channel(false);
        let handle = Arc::new(Handle {
            state: Mutex::new(InstanceState::Stopped),
            stop: stop_tx,
            done: done_rx,
        });
        let mut instances = lock(&self.instances);
        if instances.contains_key(id) {
            return Err(RuntimeError::AlreadyRunning {
                instance: id.to_owned(),
            });
        }
        instances.insert(id.to_owned(), handle.clone());
        Ok(Reservation {
            sups: self.clone(),
            id: id.to_owned(),
            handle,
            channels: Some((stop_rx, done_tx)),
        })
    }

    /// Current state of `id` (`Stopped` if unknown).
    pub(crate) fn state(&self, id: &str) -> InstanceState {
        lock(&self.instances)
            .get(id)
            .map(|handle| *lock(&handle.state))
            .unwrap_or(InstanceState::Stopped)
    }

    /// Ids of the supervised instances, sorted.
    pub(crate) fn ids(&self) -> Vec<InstanceId> {
        let mut ids: Vec<InstanceId> = lock(&self.instances).keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Stops `id` and returns once it is stopped; unknown ids are fine.
    pub(crate) async fn stop(&self, id: &str) {
        let Some(handle) = lock(&self.instances).get(id).cloned() else {
            return;
        };
        handle.stop.send_replace(true);
        let mut done = handle.done.clone();
        // An error means the supervisor is gone: stopped as well.
        let _ = done.wait_for(|done| *done).await;
    }

    /// Stops every instance, in parallel.
    pub(crate) async fn stop_all(self: &Arc<Self>) {
        let mut stops = tokio::task::JoinSet::new();
        for id in self.ids() {
            let sups = self.clone();
            stops.spawn(async move { sups.stop(&id).await });
        }
        while stops.join_next().await.is_some() {}
    }

    fn set_state(handle: &Handle, state: InstanceState) {
        *lock(&handle.state) = state;
    }

    fn started(&self, id: &str, handle: &Handle, pid: u32) {
        Self::set_state(handle, InstanceState::Running { pid });
        self.emit(RuntimeEvent::Started {
            id: id.to_owned(),
            pid,
            start_time: procfs::start_time(pid),
        });
    }
}

/// An id claimed by [`Supervisors::reserve`].
#[derive(Debug)]
pub(crate) struct Reservation {
    sups: Arc<Supervisors>,
    id: InstanceId,
    handle: Arc<Handle>,
    /// Taken by `supervise`; still here on drop means "never supervised".
    channels: Option<(watch::Receiver<bool>, watch::Sender<bool>)>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.channels.is_some() {
            remove_if_same(&self.sups, &self.id, &self.handle);
        }
    }
}

/// Forgets `id` unless it was meanwhile claimed anew.
fn remove_if_same(sups: &Supervisors, id: &str, handle: &Arc<Handle>) {
    let mut instances = lock(&sups.instances);
    if instances.get(id).is_some_and(|h| Arc::ptr_eq(h, handle)) {
        instances.remove(id);
    }
}

impl Reservation {
    /// Supervises the instance from now on, starting with its current run
    /// `first` (just launched, or adopted): reports it `Started` and spawns
    /// the supervisor task. Returns the run's pid.
    pub(crate) fn supervise<L: Launcher>(
        mut self,
        launcher: L,
        first: L::Run,
        policy: RestartPolicy,
        stop_timeout: Duration,
    ) -> u32 {
        let pid = L::pid(&first);
        let Some((stop_rx, done_tx)) = self.channels.take() else {
            // `channels` is only taken here, and `self` is consumed.
            return pid;
        };
        self.sups.started(&self.id, &self.handle, pid);
        let task = Task {
            sups: self.sups.clone(),
            id: self.id.clone(),
            handle: self.handle.clone(),
            launcher,
            policy,
            stop_timeout,
        };
        tokio::spawn(task.run(first, stop_rx, done_tx));
        pid
    }
}

/// The supervisor task of one instance.
struct Task<L> {
    sups: Arc<Supervisors>,
    id: InstanceId,
    handle: Arc<Handle>,
    launcher: L,
    policy: RestartPolicy,
    stop_timeout: Duration,
}

/// Resolves once a stop is requested (or nobody can request one any more).
async fn stop_requested(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

impl<L: Launcher> Task<L> {
    fn exited(&self, exit: Exit, restart_in: Option<Duration>) {
        self.sups.emit(RuntimeEvent::Exited {
            id: self.id.clone(),
            code: exit.code,
            signal: exit.signal,
            restart_in,
        });
    }

    async fn run(
        self,
        first: L::Run,
        mut stop_rx: watch::Receiver<bool>,
        done_tx: watch::Sender<bool>,
    ) {
        let id = &self.id;
        let mut backoff = INITIAL_BACKOFF;
        let mut restarts: u32 = 0;
        let mut current = Some((first, Instant::now()));
        let killed = loop {
            if let Some((mut run, since)) = current.take() {
                tokio::select! {
                    exit = self.launcher.wait(&mut run) => {
                        if since.elapsed() >= BACKOFF_RESET_AFTER {
                            backoff = INITIAL_BACKOFF;
                        }
                        self.launcher.reap(run).await;
                        if !exit.restarts(self.policy) {
                            tracing::info!(instance = %id, code = ?exit.code, signal = ?exit.signal, policy = ?self.policy, "instance exited; not restarting it");
                            self.exited(exit, None);
                            break false;
                        }
                        restarts = restarts.saturating_add(1);
                        Supervisors::set_state(&self.handle, InstanceState::Restarting { restarts });
                        tracing::warn!(instance = %id, code = ?exit.code, signal = ?exit.signal, restart_in = ?backoff, "instance exited unexpectedly");
                        self.exited(exit, Some(backoff));
                    }
                    _ = stop_requested(&mut stop_rx) => {
                        break self.launcher.terminate(run, self.stop_timeout).await;
                    }
                }
            }
            // Not running: wait out the backoff, then launch again.
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop_requested(&mut stop_rx) => break false,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
            match self.launcher.launch().await {
                Ok(run) => {
                    self.sups.started(id, &self.handle, L::pid(&run));
                    current = Some((run, Instant::now()));
                }
                Err(err) => {
                    restarts = restarts.saturating_add(1);
                    Supervisors::set_state(&self.handle, InstanceState::Restarting { restarts });
                    tracing::error!(instance = %id, error = %err, restart_in = ?backoff, "could not restart instance");
                    let unknown = Exit {
                        code: None,
                        signal: None,
                    };
                    self.exited(unknown, Some(backoff));
                }
            }
        };
        Supervisors::set_state(&self.handle, InstanceState::Stopped);
        remove_if_same(&self.sups, id, &self.handle);
        self.sups.emit(RuntimeEvent::Stopped {
            id: id.clone(),
            killed,
        });
        done_tx.send_replace(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies() {
        let ok = Exit {
            code: Some(0),
            signal: None,
        };
        let failed = Exit {
            code: Some(3),
            signal: None,
        };
        let signalled = Exit {
            code: None,
            signal: Some(9),
        };
        for exit in [ok, failed, signalled] {
            assert!(exit.restarts(RestartPolicy::Always));
            assert!(!exit.restarts(RestartPolicy::Never));
        }
        assert!(!ok.restarts(RestartPolicy::OnFailure));
        assert!(failed.restarts(RestartPolicy::OnFailure));
        assert!(signalled.restarts(RestartPolicy::OnFailure));
    }
}
