//! The `process` runtime: instances are child processes of the server.
//!
//! Each instance runs as `/bin/sh -c "<command>"` in its own process
//! group (so a Ctrl-C in the server's terminal does not reach it, and a stop
//! signals everything it started), with a cleared environment. The shared
//! supervisor (`supervise.rs`) restarts it after an unexpected exit per
//! its [`crate::RestartPolicy`], with exponential backoff, until it is
//! stopped on request. Limits are not applied (they are the docker
//! runtime's), and the accessory, exec and adopt methods keep the trait's
//! defaults: another server's children cannot be re-attached.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::broadcast;

use crate::logs::{Capture, LogFile, LogSource, SharedLogFile, SharedTail};
use crate::supervise::{Exit, Launcher, Supervisors};
use crate::{
    FoundProcess, InstanceId, InstanceSpec, InstanceState, LogLine, ReleaseSource, RemovedApp,
    Runtime, RuntimeError, RuntimeEvent, TaskOutcome, TaskSpec, VolumeInfo, procfs, release,
    volumes,
};

/// Time between SIGTERM and SIGKILL for a task that ran past its timeout.
const TASK_KILL_AFTER: Duration = Duration::from_secs(5);
/// How long to wait for the output of an exited child to be written; longer
/// only when a grandchild keeps its pipes open.
const OUTPUT_DRAIN: Duration = Duration::from_secs(2);
/// Variables passed on from the server's own environment.
const INHERITED_ENV: &[&str] = &["PATH", "HOME", "LANG", "TZ"];

const LOG_CAPACITY: usize = 4096;

/// Options of the process runtime.
#[derive(Debug, Clone)]
pub struct ProcessRuntimeOptions {
    /// Root of wharf's data (`$WHARF_DATA`): releases go to
    /// `<data_dir>/apps/<app>/releases/<n>`, logs to `<data_dir>/apps/<app>/logs/`.
    pub data_dir: PathBuf,
    /// A log file is rotated (to `<file>.1`, replacing it) past this size.
    pub log_max_bytes: u64,
}

/// See the crate docs. Every child gets `WHARF_DATA_DIR=<data_dir>` and
/// `WHARF_INSTANCE=<id>` in its environment: that is how
/// [`crate::Runtime::kill_leftovers`] recognises its own leftovers in `/proc`.
#[derive(Debug)]
pub struct ProcessRuntime {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Canonical, so the `WHARF_DATA_DIR` marker is the same however the
    /// data dir was spelled.
    data_dir: PathBuf,
    log_max_bytes: u64,
    sups: Arc<Supervisors>,
    /// Process groups (= pids) of the children running right now, instances
    /// and tasks: never "leftovers".
    live_groups: Mutex<HashSet<u32>>,
    /// Held while volumes are linked into a release directory.
    linking: Mutex<()>,
    logs: broadcast::Sender<LogLine>,
}

/// One running child of an instance or a task.
#[derive(Debug)]
struct Running {
    child: Child,
    pid: u32,
    capture: Capture,
}

/// How the supervisor runs one instance as a child process.
#[derive(Debug)]
struct ProcessLauncher {
    inner: Arc<Inner>,
    spec: InstanceSpec,
    log: SharedLogFile,
}

impl Launcher for ProcessLauncher {
    type Run = Running;

    async fn launch(&self) -> Result<Running, RuntimeError> {
        self.inner.spawn_instance(&self.spec, &self.log)
    }

    fn pid(run: &Running) -> u32 {
        run.pid
    }

    async fn wait(&self, run: &mut Running) -> Exit {
        match run.child.wait().await {
            Ok(status) => {
                let (code, signal) = decode(&status);
                Exit { code, signal }
            }
            Err(_) => Exit {
                code: None,
                signal: None,
            },
        }
    }

    async fn reap(&self, run: Running) {
        self.inner.after_exit(run);
    }

    async fn terminate(&self, mut run: Running, timeout: Duration) -> bool {
        let (_, killed) = terminate(&mut run.child, run.pid, timeout).await;
        self.inner.forget_group(run.pid);
        run.capture.finish(OUTPUT_DRAIN).await;
        killed
    }
}

/// Locks, recovering from poisoning (a panic elsewhere must not cascade).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Rejects names that cannot safely become part of a path.
fn check_name(what: &'static str, value: &str) -> Result<(), RuntimeError> {
    let reason = if value.is_empty() {
        "it is empty"
    } else if value == "." || value == ".." {
        "it is a relative path component"
    } else if value.contains('/') {
        "it contains '/'"
    } else if value.contains('\0') {
        "it contains a NUL byte"
    } else if value.len() > 200 {
        "it is longer than 200 bytes"
    } else {
        return Ok(());
    };
    Err(RuntimeError::InvalidName {
        what,
        value: value.to_owned(),
        reason,
    })
}

fn pid_of(pid: u32) -> Option<Pid> {
    i32::try_from(pid)
        .ok()
        .filter(|p| *p > 1)
        .map(Pid::from_raw)
}

/// Signals the process group led by our child `pid` (never our own group).
fn signal_group(pid: u32, signal: Option<Signal>) -> bool {
    let Some(pgid) = pid_of(pid) else {
        return false;
    };
    if pgid == nix::unistd::getpgrp() {
        return kill(pgid, signal).is_ok();
    }
    killpg(pgid, signal).is_ok()
}

/// Whether the group led by our child `pid` has a live (non-zombie) member:
/// orphans that no init reaps yet must not count as running.
fn group_alive(pid: u32) -> bool {
    let Some(pgid) = pid_of(pid) else {
        return false;
    };
    // Cheap pre-check: no such group at all.
    if killpg(pgid, None).is_err() {
        return false;
    }
    procfs::group_has_live_member(pgid.as_raw())
}

fn decode(status: &ExitStatus) -> (Option<i32>, Option<i32>) {
    (status.code(), status.signal())
}

/// SIGTERM to the group, SIGKILL after `timeout`. Returns the exit status of
/// the child (if it could be waited for) and whether SIGKILL was needed.
async fn terminate(child: &mut Child, pid: u32, timeout: Duration) -> (Option<ExitStatus>, bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    signal_group(pid, Some(Signal::SIGTERM));
    let mut killed = false;
    let status = match tokio::time::timeout_at(deadline, child.wait()).await {
        Ok(status) => status.ok(),
        Err(_) => {
            killed = true;
            signal_group(pid, Some(Signal::SIGKILL));
            child.wait().await.ok()
        }
    };
    // Whatever else is in the group (the app under a shell that died of
    // SIGTERM first, workers) gets the rest of the grace period.
    while group_alive(pid) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if group_alive(pid) {
        killed = true;
        signal_group(pid, Some(Signal::SIGKILL));
    }
    (status, killed)
}

impl ProcessRuntime {
    pub fn new(options: ProcessRuntimeOptions) -> Result<Self, crate::RuntimeError> {
        let dir = &options.data_dir;
        std::fs::create_dir_all(dir)
            .map_err(|err| RuntimeError::io("create data directory", dir, err))?;
        let data_dir = std::fs::canonicalize(dir)
            .map_err(|err| RuntimeError::io("resolve data directory", dir, err))?;
        let (logs, _) = broadcast::channel(LOG_CAPACITY);
        Ok(ProcessRuntime {
            inner: Arc::new(Inner {
                data_dir,
                log_max_bytes: options.log_max_bytes,
                sups: Supervisors::new(),
                live_groups: Mutex::new(HashSet::new()),
                linking: Mutex::new(()),
                logs,
            }),
        })
    }

    /// The data directory, canonicalised.
    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// `<data_dir>/apps/<app>/releases/<release>`.
    pub fn release_dir(&self, app: &str, release: u64) -> PathBuf {
        self.inner
            .app_dir(app)
            .join("releases")
            .join(release.to_string())
    }

    /// `<data_dir>/apps/<app>/logs`.
    pub fn logs_dir(&self, app: &str) -> PathBuf {
        self.inner.app_dir(app).join("logs")
    }
}

impl Inner {
    fn app_dir(&self, app: &str) -> PathBuf {
        self.data_dir.join("apps").join(app)
    }

    fn log_file(&self, app: &str, file_name: String) -> SharedLogFile {
        let path = self.app_dir(app).join("logs").join(file_name);
        Arc::new(Mutex::new(LogFile::new(path, self.log_max_bytes)))
    }

    /// The command every child runs as, with its environment.
    fn command(
        &self,
        command: &str,
        workdir: &Path,
        env: &BTreeMap<String, String>,
        identity: &[(&str, String)],
    ) -> Command {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            // No `exec` prefix: commands may be compound (`a && b`, `x; y`).
            // dash may fork even a lone simple command, so the pid can be the
            // shell's: stop signals the whole process group and waits for
            // every live member, so the app still gets SIGTERM and its grace.
            .arg(command)
            .current_dir(workdir)
            .process_group(0)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(false);
        for key in INHERITED_ENV {
            if let Some(value) = std::env::var_os(key) {
                cmd.env(key, value);
            }
        }
        cmd.envs(env);
        for (key, value) in identity {
            cmd.env(key, value);
        }
        cmd.env("WHARF_DATA_DIR", &self.data_dir);
        cmd
    }

    /// Spawns `cmd` and starts capturing its output.
    fn spawn(
        &self,
        mut cmd: Command,
        source: LogSource,
        log: SharedLogFile,
        tail: Option<SharedTail>,
    ) -> std::io::Result<Running> {
        let mut child = cmd.spawn()?;
        let Some(pid) = child.id() else {
            return Err(std::io::Error::other(
                "the child exited before its pid was known",
            ));
        };
        lock(&self.live_groups).insert(pid);
        let capture = Capture::start(
            child.stdout.take(),
            child.stderr.take(),
            source,
            log,
            self.logs.clone(),
            tail,
        );
        Ok(Running {
            child,
            pid,
            capture,
        })
    }

    fn forget_group(&self, pid: u32) {
        lock(&self.live_groups).remove(&pid);
    }

    fn spawn_instance(
        &self,
        spec: &InstanceSpec,
        log: &SharedLogFile,
    ) -> Result<Running, RuntimeError> {
        let identity = [
            ("PORT", spec.port.to_string()),
            ("WHARF_APP", spec.app.clone()),
            ("WHARF_RELEASE", spec.release.to_string()),
            ("WHARF_PROCESS", spec.process.clone()),
            ("WHARF_INSTANCE", spec.id.clone()),
        ];
        self.link_volumes(&spec.app, &spec.workdir, &spec.volumes)?;
        let cmd = self.command(&spec.command, &spec.workdir, &spec.env, &identity);
        let source = LogSource {
            app: spec.app.clone(),
            release: spec.release,
            process: spec.process.clone(),
            instance: spec.id.clone(),
        };
        self.spawn(cmd, source, log.clone(), None)
            .map_err(|source| RuntimeError::Spawn {
                instance: spec.id.clone(),
                command: spec.command.clone(),
                workdir: spec.workdir.clone(),
                source,
            })
    }

    /// Links `volumes` into the release directory `workdir` (see
    /// [`crate::volumes`]); one release's instances never race on it.
    fn link_volumes(
        &self,
        app: &str,
        workdir: &Path,
        volumes: &[crate::VolumeMount],
    ) -> Result<(), RuntimeError> {
        if volumes.is_empty() {
            return Ok(());
        }
        let _guard = lock(&self.linking);
        volumes::link_all(&self.app_dir(app), workdir, volumes)
    }

    /// Reaps what an exited child leaves: its group, its output.
    fn after_exit(&self, run: Running) {
        self.forget_group(run.pid);
        // Stragglers of the group (e.g. forked workers) would hold the port.
        signal_group(run.pid, Some(Signal::SIGKILL));
        tokio::spawn(run.capture.finish(OUTPUT_DRAIN));
    }
}

async fn blocking<T: Send + 'static>(
    what: &'static str,
    path: &Path,
    f: impl FnOnce() -> Result<T, RuntimeError> + Send + 'static,
) -> Result<T, RuntimeError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(err) => Err(RuntimeError::io(
            what,
            path,
            std::io::Error::other(err.to_string()),
        )),
    }
}

#[async_trait]
impl Runtime for ProcessRuntime {
    async fn prepare_release(&self, source: &ReleaseSource) -> Result<PathBuf, RuntimeError> {
        check_name("app name", &source.app)?;
        let dest = self.release_dir(&source.app, source.release);
        let (source, target, avoid) = (
            source.dir.clone(),
            dest.clone(),
            self.inner.data_dir.clone(),
        );
        blocking("prepare release", &dest, move || {
            release::snapshot(&source, &target, &avoid)
        })
        .await?;
        Ok(dest)
    }

    async fn remove_app(&self, app: &str, volumes: bool) -> Result<RemovedApp, RuntimeError> {
        check_name("app name", app)?;
        let dir = self.inner.app_dir(app);
        let target = dir.clone();
        let named = blocking("remove the files of", &dir, move || {
            volumes::remove_app_dir(&target, !volumes)
        })
        .await?;
        let mut removed = RemovedApp::default();
        let paths = named
            .into_iter()
            .map(|n| volumes::volumes_dir(&dir).join(n).display().to_string());
        if volumes {
            removed.volumes.extend(paths);
        } else {
            removed.kept_volumes.extend(paths);
        }
        Ok(removed)
    }

    async fn volumes(&self, app: &str) -> Result<Vec<VolumeInfo>, RuntimeError> {
        check_name("app name", app)?;
        let dir = self.inner.app_dir(app);
        let base = dir.clone();
        blocking("read the volumes of", &dir, move || {
            Ok(volumes::list_named(&base)
                .into_iter()
                .map(|name| {
                    let path = volumes::volumes_dir(&base).join(&name);
                    VolumeInfo {
                        location: path.display().to_string(),
                        size_bytes: Some(volumes::dir_size(&path)),
                        name,
                    }
                })
                .collect())
        })
        .await
    }

    async fn remove_volume(&self, app: &str, name: &str) -> Result<bool, RuntimeError> {
        check_name("app name", app)?;
        check_name("volume name", name)?;
        let dir = self.inner.app_dir(app);
        let (base, name) = (dir.clone(), name.to_owned());
        blocking("remove a volume of", &dir, move || {
            volumes::remove_named(&base, &name)
        })
        .await
    }

    async fn copy_out(
        &self,
        app: &str,
        workdir: &Path,
        _process: &str,
        path: &str,
        dest: &Path,
    ) -> Result<(), RuntimeError> {
        check_name("app name", app)?;
        let (from, to) = (workdir.join(path.trim_start_matches('/')), dest.to_owned());
        blocking("copy out of", &from.clone(), move || {
            release::remove(&to)?;
            std::fs::create_dir_all(&to)
                .map_err(|err| RuntimeError::io("create directory", &to, err))?;
            if from.is_dir() {
                volumes::merge_missing(&from, &to)
                    .map_err(|err| RuntimeError::io("copy out of", &from, err))?;
            }
            Ok(())
        })
        .await
    }

    async fn remove_release(&self, app: &str, release: u64) -> Result<(), RuntimeError> {
        check_name("app name", app)?;
        let dest = self.release_dir(app, release);
        let target = dest.clone();
        blocking("remove release", &dest, move || release::remove(&target)).await
    }

    async fn run_task(&self, spec: TaskSpec) -> Result<TaskOutcome, RuntimeError> {
        check_name("app name", &spec.app)?;
        check_name("task name", &spec.name)?;
        let inner = &self.inner;
        let instance = format!("{}-r{}-{}", spec.app, spec.release, spec.name);
        let log = inner.log_file(
            &spec.app,
            format!("release-{}-{}.log", spec.release, spec.name),
        );
        let tail: SharedTail = Arc::new(Mutex::new(VecDeque::new()));
        let identity = [
            ("WHARF_APP", spec.app.clone()),
            ("WHARF_RELEASE", spec.release.to_string()),
            ("WHARF_PROCESS", spec.name.clone()),
            ("WHARF_INSTANCE", instance.clone()),
        ];
        inner.link_volumes(&spec.app, &spec.workdir, &spec.volumes)?;
        let cmd = inner.command(&spec.command, &spec.workdir, &spec.env, &identity);
        let source = LogSource {
            app: spec.app.clone(),
            release: spec.release,
            process: spec.name.clone(),
            instance: instance.clone(),
        };
        let mut run = inner
            .spawn(cmd, source, log, Some(tail.clone()))
            .map_err(|source| RuntimeError::Spawn {
                instance: instance.clone(),
                command: spec.command.clone(),
                workdir: spec.workdir.clone(),
                source,
            })?;
        let (status, timed_out) = tokio::select! {
            status = run.child.wait() => (status.ok(), false),
            _ = tokio::time::sleep(spec.timeout) => {
                tracing::warn!(task = %instance, timeout = ?spec.timeout, "task ran past its timeout; stopping it");
                let (status, _) = terminate(&mut run.child, run.pid, TASK_KILL_AFTER).await;
                (status, true)
            }
        };
        inner.forget_group(run.pid);
        // A release command must not leave processes behind.
        signal_group(run.pid, Some(Signal::SIGKILL));
        run.capture.finish(OUTPUT_DRAIN).await;
        let Some(status) = status else {
            return Err(RuntimeError::io(
                "wait for task",
                spec.workdir.clone(),
                std::io::Error::other(format!("lost track of task {instance} (pid {})", run.pid)),
            ));
        };
        let (code, signal) = decode(&status);
        let tail = lock(&tail).iter().cloned().collect();
        Ok(TaskOutcome {
            code,
            signal,
            timed_out,
            tail,
        })
    }

    async fn start(&self, spec: InstanceSpec) -> Result<u32, RuntimeError> {
        check_name("app name", &spec.app)?;
        check_name("instance id", &spec.id)?;
        let inner = &self.inner;
        let reservation = inner.sups.reserve(&spec.id)?;
        let log = inner.log_file(&spec.app, format!("{}.log", spec.id));
        let first = inner.spawn_instance(&spec, &log)?;
        let (policy, stop_timeout) = (spec.restart, spec.stop_timeout);
        let launcher = ProcessLauncher {
            inner: inner.clone(),
            spec,
            log,
        };
        Ok(reservation.supervise(launcher, first, policy, stop_timeout))
    }

    async fn stop(&self, id: &str) -> Result<(), RuntimeError> {
        self.inner.sups.stop(id).await;
        Ok(())
    }

    fn state(&self, id: &str) -> InstanceState {
        self.inner.sups.state(id)
    }

    fn instances(&self) -> Vec<InstanceId> {
        self.inner.sups.ids()
    }

    async fn kill_leftovers(
        &self,
        app: Option<&str>,
        grace: Duration,
    ) -> Result<Vec<FoundProcess>, RuntimeError> {
        let mut marker = b"WHARF_DATA_DIR=".to_vec();
        marker.extend_from_slice(self.inner.data_dir.as_os_str().as_bytes());
        let proc_root = PathBuf::from("/proc");
        let root = proc_root.clone();
        let found = blocking("scan", &proc_root, move || {
            Ok(procfs::find_by_env(&root, &marker))
        })
        .await?;
        let own_pid = std::process::id();
        let own_group = nix::unistd::getpgrp().as_raw();
        let live = lock(&self.inner.live_groups).clone();
        let found: Vec<procfs::Marked> = found
            .into_iter()
            .filter(|p| {
                p.pid != own_pid
                    && app.is_none_or(|a| p.app.as_deref() == Some(a))
                    && !live.contains(&p.pid)
                    && !u32::try_from(p.stat.pgid).is_ok_and(|g| live.contains(&g))
            })
            .collect();
        if found.is_empty() {
            return Ok(Vec::new());
        }
        // A whole group, unless it is ours (then only the process itself).
        let send = |p: &procfs::Marked, signal: Signal| {
            if p.stat.pgid > 1 && p.stat.pgid != own_group {
                let _ = killpg(Pid::from_raw(p.stat.pgid), signal);
            } else if let Some(pid) = pid_of(p.pid) {
                let _ = kill(pid, signal);
            }
        };
        for p in &found {
            tracing::warn!(pid = p.pid, instance = ?p.instance, "stopping process left by an earlier server");
            send(p, Signal::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        loop {
            let left: Vec<&procfs::Marked> = found
                .iter()
                .filter(|p| procfs::alive(p.pid, p.stat.start_time))
                .collect();
            if left.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                for p in &left {
                    tracing::warn!(pid = p.pid, instance = ?p.instance, "leftover process ignored SIGTERM; killing it");
                    send(p, Signal::SIGKILL);
                }
                // SIGKILL is not deferrable; give the kernel a moment to finish.
                let until = Instant::now() + Duration::from_secs(1);
                while Instant::now() < until
                    && left.iter().any(|p| procfs::alive(p.pid, p.stat.start_time))
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(found
            .into_iter()
            .map(|p| FoundProcess {
                pid: p.pid,
                instance: p.instance,
            })
            .collect())
    }

    fn events(&self) -> broadcast::Receiver<RuntimeEvent> {
        self.inner.sups.subscribe()
    }

    fn log_lines(&self) -> broadcast::Receiver<LogLine> {
        self.inner.logs.subscribe()
    }

    async fn tail_logs(
        &self,
        app: &str,
        process: Option<&str>,
        n: usize,
    ) -> Result<Vec<LogLine>, RuntimeError> {
        check_name("app name", app)?;
        let dir = self.logs_dir(app);
        let (path, app, process) = (dir.clone(), app.to_owned(), process.map(str::to_owned));
        blocking("read logs in", &dir, move || {
            crate::logs::tail_dir(&path, &app, process.as_deref(), n)
        })
        .await
    }

    async fn shutdown(&self) {
        self.inner.sups.stop_all().await;
    }
}
