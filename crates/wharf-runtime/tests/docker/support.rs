//! What every docker test uses: a runtime on a fresh data dir ([`Env`]),
//! the images' binaries, the engine's own view, and the [`Cleanup`] guard.

pub use std::collections::{BTreeMap, HashMap};
pub use std::io::{Read, Write};
pub use std::net::TcpStream;
pub use std::path::{Path, PathBuf};
pub use std::sync::OnceLock;
pub use std::time::{Duration, Instant};

pub(crate) use crate::common::{self, WAIT, next_event, wait_line};
pub use bollard::Docker;
pub use bollard::models::ContainerCreateBody;
pub use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, ListContainersOptionsBuilder,
    ListImagesOptionsBuilder, ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveImageOptionsBuilder, RemoveVolumeOptions,
};
pub use wharf_runtime::docker::{DockerNetwork, DockerRuntime, DockerRuntimeOptions};
pub use wharf_runtime::{
    AccessoryBuild, AccessoryHealth, AccessorySpec, DockerBuild, ImageSource, InstanceSpec,
    InstanceState, Limits, LogLine, PortMapping, ReleaseSource, RestartPolicy, Runtime,
    RuntimeEvent, TaskSpec, VolumeMount, VolumeSource,
};

pub const HELLO_DOCKERFILE: &str = "FROM scratch\nCOPY hello /hello\nCMD [\"/hello\"]\n";
pub const TINY_DOCKERFILE: &str = "FROM scratch\nCOPY tiny /tiny\nCMD [\"/tiny\"]\n";

pub use crate::static_hello::{static_hello as hello_binary, workspace_root};

/// The static `tiny` binary, built once per test run.
pub fn tiny_binary() -> &'static Path {
    static TINY: OnceLock<PathBuf> = OnceLock::new();
    TINY.get_or_init(|| {
        let dir = workspace_root().join("target/static/tiny");
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("tiny.c");
        std::fs::write(&src, include_str!("../common/tiny.c")).unwrap();
        let out = dir.join("tiny");
        let status = std::process::Command::new("cc")
            .args(["-static", "-O1", "-o"])
            .arg(&out)
            .arg(&src)
            .status()
            .unwrap();
        assert!(status.success(), "cc -static tiny.c failed");
        out
    })
}

/// SIGKILLs a container's main process (by its host pid) and waits for its
/// `Exited` event, which must carry the engine's 128 + 9; returns when the
/// supervisor restarts it.
pub async fn kill9_then_exited(
    pid: u32,
    events: &mut tokio::sync::broadcast::Receiver<RuntimeEvent>,
    id: &str,
) -> Option<Duration> {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    match next_event(events, id).await {
        RuntimeEvent::Exited {
            code, restart_in, ..
        } => {
            assert_eq!(code, Some(137));
            restart_in
        }
        other => panic!("expected Exited, got {other:?}"),
    }
}

/// A free port on 127.0.0.1 (free a moment ago).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A runtime on a fresh data dir, and the cleanup of one app.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub rt: DockerRuntime,
    pub app: String,
    _cleanup: Cleanup,
}

pub async fn connect(data_dir: &Path, network: DockerNetwork) -> DockerRuntime {
    let mut options = DockerRuntimeOptions::new(data_dir, 10 * 1024 * 1024);
    options.network = network;
    match DockerRuntime::connect(options).await {
        Ok(rt) => rt,
        Err(err) => panic!("these tests need this machine's Docker engine: {err}"),
    }
}

impl Env {
    pub async fn new(test: &str, network: DockerNetwork) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let app = format!("t{}-{test}", std::process::id());
        let rt = connect(&dir.path().join("data"), network).await;
        let cleanup = Cleanup {
            app: app.clone(),
            data_dir: rt.data_dir().to_owned(),
        };
        Env {
            dir,
            rt,
            app,
            _cleanup: cleanup,
        }
    }

    /// An app source dir with `binary` and `dockerfile`.
    pub fn source(&self, name: &str, binary: &Path, dockerfile: &str) -> PathBuf {
        let src = self.dir.path().join(name);
        std::fs::create_dir_all(&src).unwrap();
        let file = binary.file_name().unwrap();
        std::fs::copy(binary, src.join(file)).unwrap();
        std::fs::write(src.join("Dockerfile"), dockerfile).unwrap();
        src
    }

    pub async fn release(&self, release: u64, binary: &Path, dockerfile: &str) -> PathBuf {
        let src = self.source(&format!("src{release}"), binary, dockerfile);
        self.rt
            .prepare_release(&common::source(&self.app, release, &src))
            .await
            .unwrap()
    }

    pub fn spec(&self, workdir: &Path, process: &str, command: &str) -> InstanceSpec {
        InstanceSpec {
            id: format!("{}-r1-{process}-0", self.app),
            app: self.app.clone(),
            release: 1,
            process: process.to_owned(),
            index: 0,
            command: command.to_owned(),
            entrypoint: None,
            workdir: workdir.to_owned(),
            env: BTreeMap::new(),
            port: free_port(),
            container_port: None,
            publish: true,
            volumes: Vec::new(),
            ports: Vec::new(),
            stop_timeout: Duration::from_secs(5),
            limits: Limits::default(),
            restart: RestartPolicy::default(),
        }
    }

    pub fn task(&self, workdir: &Path, command: &str, env: &[(&str, &str)]) -> TaskSpec {
        TaskSpec {
            app: self.app.clone(),
            release: 1,
            name: "release".to_owned(),
            command: command.to_owned(),
            workdir: workdir.to_owned(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            volumes: Vec::new(),
            timeout: Duration::from_secs(30),
        }
    }
}

/// Removes an app's containers (of one data dir), network and images, also
/// when the test fails.
pub struct Cleanup {
    pub app: String,
    pub data_dir: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (app, data_dir) = (self.app.clone(), self.data_dir.clone());
        // Its own thread and runtime: Drop cannot await, and may run while
        // the test's runtime unwinds.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(clean_app(&app, &data_dir));
        })
        .join();
    }
}

pub async fn docker() -> Docker {
    Docker::connect_with_unix_defaults()
        .unwrap()
        .negotiate_version()
        .await
        .unwrap()
}

pub async fn clean_app(app: &str, data_dir: &Path) {
    let docker = docker().await;
    let filters = HashMap::from([(
        "label",
        vec![
            format!("wharf.app={app}"),
            format!("wharf.data-dir={}", data_dir.display()),
        ],
    )]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    for c in docker
        .list_containers(Some(options))
        .await
        .unwrap_or_default()
    {
        if let Some(id) = c.id {
            let options = RemoveContainerOptionsBuilder::default().force(true).build();
            let _ = docker.remove_container(&id, Some(options)).await;
        }
    }
    let _ = docker.remove_network(&format!("wharf-{app}")).await;
    let by_label = HashMap::from([(
        "label",
        vec![format!("wharf.data-dir={}", data_dir.display())],
    )]);
    let options = ListVolumesOptionsBuilder::default()
        .filters(&by_label)
        .build();
    let volumes = docker.list_volumes(Some(options)).await.ok();
    for volume in volumes.and_then(|v| v.volumes).unwrap_or_default() {
        let _ = docker
            .remove_volume(&volume.name, None::<RemoveVolumeOptions>)
            .await;
    }
    let by_tag = HashMap::from([("reference", vec![format!("wharf/{app}")])]);
    for filters in [by_tag, by_label] {
        let options = ListImagesOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        for image in docker.list_images(Some(options)).await.unwrap_or_default() {
            let options = RemoveImageOptionsBuilder::default().force(true).build();
            let _ = docker.remove_image(&image.id, Some(options), None).await;
        }
    }
}

/// `GET path` on 127.0.0.1:`port`, retried until it answers: (status, head, body).
pub fn http_get(port: u16, path: &str) -> (u16, String, String) {
    let deadline = Instant::now() + WAIT;
    loop {
        let attempt = (|| -> std::io::Result<String> {
            let mut stream = TcpStream::connect(("127.0.0.1", port))?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
            let mut text = String::new();
            stream.read_to_string(&mut text)?;
            Ok(text)
        })();
        match attempt {
            Ok(text) if text.starts_with("HTTP/") => {
                let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
                let status = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap();
                return (status, head.to_owned(), body.to_owned());
            }
            other => {
                assert!(
                    Instant::now() < deadline,
                    "GET {path} on port {port} never answered: {other:?}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

pub async fn container_exists(name: &str) -> bool {
    docker()
        .await
        .inspect_container(name, None::<InspectContainerOptions>)
        .await
        .is_ok()
}

/// A shell image: static busybox with its applets linked into /bin (an
/// exec-form `RUN` needs no shell in the image).
pub const BUSYBOX_DOCKERFILE: &str = "FROM scratch\nCOPY busybox /bin/busybox\n\
    RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nCMD [\"/bin/sh\"]\n";

/// A process that logs a tick every 100 ms and exits 0 on SIGTERM (as
/// PID 1 it would ignore SIGTERM without the trap).
pub const TICKER: &str = r#"/bin/sh -c 'trap "echo bye; exit 0" TERM; i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.1; done'"#;

pub fn busybox() -> &'static Path {
    let path = Path::new("/bin/busybox");
    assert!(
        path.is_file(),
        "these tests need a static /bin/busybox (Debian: apt-get install busybox-static)"
    );
    path
}

impl Env {
    pub async fn busybox_release(&self, release: u64) -> PathBuf {
        self.release(release, busybox(), BUSYBOX_DOCKERFILE).await
    }

    /// The error of a `prepare_release` that must fail.
    pub async fn prepare_error(&self, source: &ReleaseSource) -> String {
        self.rt
            .prepare_release(source)
            .await
            .unwrap_err()
            .to_string()
    }

    pub fn source_of(&self, release: u64, dir: &Path) -> ReleaseSource {
        common::source(&self.app, release, dir)
    }

    pub fn container(&self, id: &str) -> String {
        format!("wharf-{id}")
    }
}

pub async fn inspect(name: &str) -> bollard::models::ContainerInspectResponse {
    docker()
        .await
        .inspect_container(name, None::<InspectContainerOptions>)
        .await
        .unwrap()
}

/// Log lines received so far, without waiting.
pub fn drain(rx: &mut tokio::sync::broadcast::Receiver<LogLine>) -> Vec<LogLine> {
    let mut lines = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(line) => lines.push(line),
            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {}
            Err(_) => return lines,
        }
    }
}
