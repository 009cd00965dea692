//! Helpers shared by the runtime's integration tests.

#![allow(clippy::unwrap_used)] // Test helpers: a failed step is a failed test.
#![allow(dead_code)] // Each test binary uses a different subset.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::broadcast;
use wharf_runtime::process::{ProcessRuntime, ProcessRuntimeOptions};
use wharf_runtime::{
    DockerBuild, InstanceSpec, Limits, LogLine, ReleaseSource, RestartPolicy, RuntimeEvent,
};

pub const WAIT: Duration = Duration::from_secs(15);

pub struct Env {
    pub dir: tempfile::TempDir,
    pub rt: ProcessRuntime,
}

impl Env {
    pub fn new() -> Self {
        Self::with_log_cap(10 * 1024 * 1024)
    }

    pub fn with_log_cap(log_max_bytes: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let rt = ProcessRuntime::new(ProcessRuntimeOptions {
            data_dir: dir.path().join("data"),
            log_max_bytes,
        })
        .unwrap();
        Env { dir, rt }
    }

    /// A work directory with the given executable scripts.
    pub fn workdir(&self, scripts: &[(&str, &str)]) -> PathBuf {
        let work = self.dir.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        for (name, body) in scripts {
            write_script(&work.join(name), body);
        }
        work
    }

    pub fn spec(
        &self,
        app: &str,
        process: &str,
        index: u32,
        command: &str,
        workdir: &Path,
    ) -> InstanceSpec {
        InstanceSpec {
            id: format!("{app}-r1-{process}-{index}"),
            app: app.to_owned(),
            release: 1,
            process: process.to_owned(),
            index,
            command: command.to_owned(),
            entrypoint: None,
            workdir: workdir.to_owned(),
            env: BTreeMap::new(),
            port: 40000 + index as u16,
            container_port: None,
            publish: true,
            volumes: Vec::new(),
            ports: Vec::new(),
            stop_timeout: Duration::from_secs(5),
            limits: Limits::default(),
            restart: RestartPolicy::default(),
        }
    }

    pub fn log_path(&self, app: &str, file: &str) -> PathBuf {
        self.rt
            .data_dir()
            .join("apps")
            .join(app)
            .join("logs")
            .join(file)
    }
}

/// The source of release `release` of `app` from `dir`, version `r<release>`.
pub fn source(app: &str, release: u64, dir: &Path) -> ReleaseSource {
    ReleaseSource {
        app: app.to_owned(),
        release,
        dir: dir.to_owned(),
        version: format!("r{release}"),
        build: DockerBuild::default(),
        image: None,
        app_image: true,
        processes: BTreeMap::new(),
    }
}

pub fn write_script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn event_id(event: &RuntimeEvent) -> &str {
    match event {
        RuntimeEvent::Started { id, .. }
        | RuntimeEvent::Exited { id, .. }
        | RuntimeEvent::Stopped { id, .. } => id,
    }
}

/// The next event of instance `id`.
pub async fn next_event(rx: &mut broadcast::Receiver<RuntimeEvent>, id: &str) -> RuntimeEvent {
    tokio::time::timeout(WAIT, async {
        loop {
            match rx.recv().await {
                Ok(event) if event_id(&event) == id => return event,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => panic!("event channel closed"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no event for {id} within {WAIT:?}"))
}

/// Waits for a log line of `instance` (any, if empty) satisfying `pred`.
pub async fn wait_line(
    rx: &mut broadcast::Receiver<LogLine>,
    instance: &str,
    pred: impl Fn(&LogLine) -> bool,
) -> LogLine {
    tokio::time::timeout(WAIT, async {
        loop {
            match rx.recv().await {
                Ok(line) if (instance.is_empty() || line.instance == instance) && pred(&line) => {
                    return line;
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => panic!("log channel closed"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no matching log line of {instance} within {WAIT:?}"))
}

/// Waits until the file at `path` contains `needle`; returns its content.
pub async fn wait_file_contains(path: &Path, needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "{} never contained {needle:?}; it has:\n{text}",
                path.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
