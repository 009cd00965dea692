//! The `docker` runtime against this machine's real Docker engine.
//!
//! The engine cannot pull, so every image is `FROM scratch` with a static
//! binary: the example app `hello` (built once per run into
//! `target/static`), `tiny`, a small C server (`tests/common/tiny.c`,
//! built with `cc -static`) that listens on `0.0.0.0:$PORT`, which `hello`
//! (bound to 127.0.0.1) cannot do behind a published port, and a shell
//! image of the static `/bin/busybox` (Debian's busybox-static) with its
//! applets installed by an exec-form `RUN`. An unreachable engine fails
//! these tests; they never skip. Every container, network, volume and
//! image a test makes is removed by its [`Cleanup`] guard.

#![allow(clippy::unwrap_used)] // Test helpers: a failed step is a failed test.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, ListContainersOptionsBuilder,
    ListImagesOptionsBuilder, ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveImageOptionsBuilder, RemoveVolumeOptions,
};
use common::{WAIT, next_event, wait_line};
use wharf_runtime::docker::{DockerNetwork, DockerRuntime, DockerRuntimeOptions};
use wharf_runtime::{
    AccessoryBuild, AccessoryHealth, AccessorySpec, DockerBuild, ImageSource, InstanceSpec,
    InstanceState, Limits, LogLine, PortMapping, ReleaseSource, RestartPolicy, Runtime,
    RuntimeEvent, TaskSpec, VolumeMount, VolumeSource,
};

const HELLO_DOCKERFILE: &str = "FROM scratch\nCOPY hello /hello\nCMD [\"/hello\"]\n";
const TINY_DOCKERFILE: &str = "FROM scratch\nCOPY tiny /tiny\nCMD [\"/tiny\"]\n";

#[path = "common/static_hello.rs"]
mod static_hello;

use static_hello::{static_hello as hello_binary, workspace_root};

/// The static `tiny` binary, built once per test run.
fn tiny_binary() -> &'static Path {
    static TINY: OnceLock<PathBuf> = OnceLock::new();
    TINY.get_or_init(|| {
        let dir = workspace_root().join("target/static/tiny");
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("tiny.c");
        std::fs::write(&src, include_str!("common/tiny.c")).unwrap();
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
async fn kill9_then_exited(
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
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A runtime on a fresh data dir, and the cleanup of one app.
struct Env {
    dir: tempfile::TempDir,
    rt: DockerRuntime,
    app: String,
    _cleanup: Cleanup,
}

async fn connect(data_dir: &Path, network: DockerNetwork) -> DockerRuntime {
    let mut options = DockerRuntimeOptions::new(data_dir, 10 * 1024 * 1024);
    options.network = network;
    match DockerRuntime::connect(options).await {
        Ok(rt) => rt,
        Err(err) => panic!("these tests need this machine's Docker engine: {err}"),
    }
}

impl Env {
    async fn new(test: &str, network: DockerNetwork) -> Self {
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
    fn source(&self, name: &str, binary: &Path, dockerfile: &str) -> PathBuf {
        let src = self.dir.path().join(name);
        std::fs::create_dir_all(&src).unwrap();
        let file = binary.file_name().unwrap();
        std::fs::copy(binary, src.join(file)).unwrap();
        std::fs::write(src.join("Dockerfile"), dockerfile).unwrap();
        src
    }

    async fn release(&self, release: u64, binary: &Path, dockerfile: &str) -> PathBuf {
        let src = self.source(&format!("src{release}"), binary, dockerfile);
        self.rt
            .prepare_release(&common::source(&self.app, release, &src))
            .await
            .unwrap()
    }

    fn spec(&self, workdir: &Path, process: &str, command: &str) -> InstanceSpec {
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

    fn task(&self, workdir: &Path, command: &str, env: &[(&str, &str)]) -> TaskSpec {
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
struct Cleanup {
    app: String,
    data_dir: PathBuf,
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

async fn docker() -> Docker {
    Docker::connect_with_unix_defaults()
        .unwrap()
        .negotiate_version()
        .await
        .unwrap()
}

async fn clean_app(app: &str, data_dir: &Path) {
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
fn http_get(port: u16, path: &str) -> (u16, String, String) {
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

async fn container_exists(name: &str) -> bool {
    docker()
        .await
        .inspect_container(name, None::<InspectContainerOptions>)
        .await
        .is_ok()
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn unreachable_engine_names_the_socket_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = DockerRuntimeOptions::new(dir.path().join("data"), 1024);
    options.socket = Some(dir.path().join("no/docker.sock"));
    let err = DockerRuntime::connect(options).await.unwrap_err();
    let msg = err.to_string();
    let socket = format!("unix://{}", dir.path().join("no/docker.sock").display());
    assert!(
        msg.starts_with(&format!("could not reach the Docker engine at {socket}: ")),
        "{msg}"
    );
    assert!(msg.contains("is dockerd running"), "{msg}");
    assert!(msg.contains("Set DOCKER_HOST"), "{msg}");
}

#[tokio::test]
async fn prepare_release_builds_tags_and_removes_images() {
    let env = Env::new("build", DockerNetwork::AppBridge).await;
    let mut logs = env.rt.log_lines();
    let dir = env.release(1, hello_binary(), HELLO_DOCKERFILE).await;
    assert_eq!(
        dir,
        env.rt
            .data_dir()
            .join(format!("apps/{}/releases/1", env.app))
    );
    let image = std::fs::read_to_string(dir.join("image")).unwrap();
    assert!(image.starts_with("sha256:"), "{image}");
    let tag = format!("wharf/{}:r1", env.app);
    let inspected = docker().await.inspect_image(&tag).await.unwrap();
    assert_eq!(inspected.id.as_deref(), Some(image.trim()));
    // Build output is logged as process "build".
    let line = wait_line(&mut logs, &format!("{}-r1-build", env.app), |l| {
        l.line.contains("COPY hello /hello")
    })
    .await;
    assert_eq!(line.process, "build");
    let tail = env
        .rt
        .tail_logs(&env.app, Some("build"), 100)
        .await
        .unwrap();
    assert!(
        tail.iter().any(|l| l.line.contains("COPY hello")),
        "{tail:?}"
    );

    // A failing Dockerfile: the error has the engine's message and the output.
    let src = env.source("bad", hello_binary(), "FROM scratch\nCOPY missing.txt /x\n");
    let err = env
        .rt
        .prepare_release(&common::source(&env.app, 2, &src))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!("could not build image wharf/{}:r2 from ", env.app)),
        "{err}"
    );
    assert!(err.contains("missing.txt"), "{err}");
    assert!(err.contains("COPY missing.txt /x"), "{err}");
    assert!(!env.rt.release_dir(&env.app, 2).exists());

    // No Dockerfile at all.
    let empty = env.dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err = env
        .rt
        .prepare_release(&common::source(&env.app, 3, &empty))
        .await
        .unwrap_err()
        .to_string();
    let expected = format!("no Dockerfile at {}: ", empty.join("Dockerfile").display());
    assert!(err.starts_with(&expected), "{err}");

    env.rt.remove_release(&env.app, 1).await.unwrap();
    assert!(!dir.exists());
    assert!(docker().await.inspect_image(&tag).await.is_err());
    // Removing again is fine.
    env.rt.remove_release(&env.app, 1).await.unwrap();
}

/// A release whose processes have images of their own: each is built (or
/// tagged) with the release, an instance runs its process's image, a
/// directory is copied out of it (asset bridging), and removing the
/// release removes them all.
#[tokio::test]
async fn a_release_of_several_images_is_made_and_removed_together() {
    let env = Env::new("images", DockerNetwork::AppBridge).await;
    let src = env.source("src", hello_binary(), HELLO_DOCKERFILE);
    std::fs::create_dir_all(src.join("assets/css")).unwrap();
    std::fs::write(src.join("assets/css/app-1.css"), "one").unwrap();
    std::fs::write(
        src.join("api.Dockerfile"),
        "FROM scratch\nCOPY hello /hello\nCOPY assets /srv/assets\nCMD [\"/hello\"]\n",
    )
    .unwrap();
    // A "prebuilt" image: release 1's app image, made by an earlier release.
    let base = env.release(9, hello_binary(), HELLO_DOCKERFILE).await;
    let prebuilt = std::fs::read_to_string(base.join("image")).unwrap();
    let mut source = common::source(&env.app, 1, &src);
    source.app_image = false;
    source.processes = BTreeMap::from([
        (
            "api".to_owned(),
            ImageSource::Build(DockerBuild {
                dockerfile: "api.Dockerfile".into(),
                ..DockerBuild::default()
            }),
        ),
        (
            "proxy".to_owned(),
            ImageSource::Prebuilt(prebuilt.trim().to_owned()),
        ),
    ]);
    let dir = env.rt.prepare_release(&source).await.unwrap();
    assert!(
        !dir.join("image").exists(),
        "no process runs the app's image"
    );
    let tags = [
        format!("wharf/{}:r1-api", env.app),
        format!("wharf/{}:r1-proxy", env.app),
    ];
    for tag in &tags {
        assert!(docker().await.inspect_image(tag).await.is_ok(), "{tag}");
    }

    let assets = env.dir.path().join("assets-out");
    env.rt
        .copy_out(&env.app, &dir, "api", "/srv/assets", &assets)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(assets.join("css/app-1.css")).unwrap(),
        "one"
    );
    // A path the image does not have gives an empty directory.
    let none = env.dir.path().join("none");
    env.rt
        .copy_out(&env.app, &dir, "proxy", "/nothing", &none)
        .await
        .unwrap();
    assert_eq!(std::fs::read_dir(&none).unwrap().count(), 0);

    let spec = env.spec(&dir, "api", "");
    let name = format!("wharf-{}", spec.id);
    env.rt.start(spec).await.unwrap();
    let api_image = std::fs::read_to_string(dir.join("processes/api/image")).unwrap();
    assert_eq!(
        inspect(&name).await.image.as_deref(),
        Some(api_image.trim())
    );
    env.rt.shutdown().await;

    env.rt.remove_release(&env.app, 1).await.unwrap();
    assert!(!dir.exists());
    for tag in &tags {
        assert!(
            docker().await.inspect_image(tag).await.is_err(),
            "{tag} is left"
        );
    }
    // The prebuilt image is release 9's too: it stays.
    assert!(docker().await.inspect_image(prebuilt.trim()).await.is_ok());
    env.rt.remove_network(&env.app).await.unwrap();
}

#[tokio::test]
async fn host_network_instance_serves_http_and_stops_gracefully() {
    let env = Env::new("host", DockerNetwork::Host).await;
    let workdir = env.release(1, hello_binary(), HELLO_DOCKERFILE).await;
    let mut events = env.rt.events();
    let mut spec = env.spec(&workdir, "web", "");
    spec.env.insert(
        "HELLO_MESSAGE".to_owned(),
        "from the docker test".to_owned(),
    );
    let id = spec.id.clone();
    let port = spec.port;
    let pid = env.rt.start(spec).await.unwrap();
    assert!(pid > 1);
    assert_eq!(env.rt.state(&id), InstanceState::Running { pid });
    assert_eq!(env.rt.instances(), vec![id.clone()]);
    match next_event(&mut events, &id).await {
        RuntimeEvent::Started { pid: p, .. } => assert_eq!(p, pid),
        other => panic!("expected Started, got {other:?}"),
    }
    let (status, head, _) = tokio::task::spawn_blocking(move || http_get(port, "/up"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase().contains("x-hello-release: 1"),
        "{head}"
    );
    let (_, _, body) = tokio::task::spawn_blocking(move || http_get(port, "/"))
        .await
        .unwrap();
    assert!(body.contains("from the docker test"), "{body}");
    assert!(body.contains(&id), "WHARF_INSTANCE not passed: {body}");

    let name = format!("wharf-{id}");
    let labels = docker()
        .await
        .inspect_container(&name, None::<InspectContainerOptions>)
        .await
        .unwrap()
        .config
        .unwrap()
        .labels
        .unwrap();
    assert_eq!(labels["wharf.app"], env.app);
    assert_eq!(labels["wharf.instance"], id);
    assert_eq!(labels["wharf.process"], "web");
    assert_eq!(labels["wharf.release"], "1");
    assert_eq!(
        labels["wharf.data-dir"],
        env.rt.data_dir().to_string_lossy()
    );

    let started = Instant::now();
    env.rt.stop(&id).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        next_event(&mut events, &id).await,
        RuntimeEvent::Stopped {
            id: id.clone(),
            killed: false
        }
    );
    assert!(!container_exists(&name).await);
    assert_eq!(env.rt.state(&id), InstanceState::Stopped);
    let log = std::fs::read_to_string(env.rt.logs_dir(&env.app).join(format!("{id}.log"))).unwrap();
    assert!(log.contains("stdout hello: listening on"), "{log}");
    assert!(log.contains("stopped gracefully"), "{log}");
    // Unknown ids are fine.
    env.rt.stop(&id).await.unwrap();
}

#[tokio::test]
async fn bridge_instance_is_published_on_loopback_with_an_alias() {
    let env = Env::new("bridge", DockerNetwork::AppBridge).await;
    let workdir = env.release(1, tiny_binary(), TINY_DOCKERFILE).await;
    let mut spec = env.spec(&workdir, "web", "");
    spec.env.insert("GREETING".to_owned(), "ahoy".to_owned());
    let id = spec.id.clone();
    let port = spec.port;
    env.rt.start(spec).await.unwrap();
    let (status, _, body) = tokio::task::spawn_blocking(move || http_get(port, "/up"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, "greeting=ahoy\n");

    let name = format!("wharf-{id}");
    let info = docker()
        .await
        .inspect_container(&name, None::<InspectContainerOptions>)
        .await
        .unwrap();
    let host = info.host_config.unwrap();
    let binding = &host.port_bindings.unwrap()[&format!("{port}/tcp")];
    let binding = &binding.as_ref().unwrap()[0];
    assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(
        binding.host_port.as_deref(),
        Some(port.to_string().as_str())
    );
    let networks = info.network_settings.unwrap().networks.unwrap();
    let endpoint = &networks[&format!("wharf-{}", env.app)];
    assert!(
        endpoint
            .aliases
            .as_ref()
            .is_some_and(|a| a.contains(&"web".to_owned())),
        "{endpoint:?}"
    );

    // A worker (not `http`) is on the network under its alias, and
    // publishes nothing.
    let mut worker = env.spec(&workdir, "worker", "");
    worker.id = format!("{}-r1-worker-0", env.app);
    worker.publish = false;
    let worker_name = format!("wharf-{}", worker.id);
    env.rt.start(worker).await.unwrap();
    let info = docker()
        .await
        .inspect_container(&worker_name, None::<InspectContainerOptions>)
        .await
        .unwrap();
    let bindings = info.host_config.unwrap().port_bindings.unwrap_or_default();
    assert!(
        bindings
            .values()
            .all(|b| b.as_ref().is_none_or(Vec::is_empty)),
        "{bindings:?}"
    );
    let networks = info.network_settings.unwrap().networks.unwrap();
    assert!(
        networks[&format!("wharf-{}", env.app)]
            .aliases
            .as_ref()
            .is_some_and(|a| a.contains(&"worker".to_owned()))
    );

    env.rt.shutdown().await;
    assert!(!container_exists(&name).await);
    assert!(env.rt.instances().is_empty());
    env.rt.remove_network(&env.app).await.unwrap();
}

/// A process without `http` (a database, an SMTP server) publishes its
/// `ports`; its named volume is created with wharf's labels, listed, and
/// removable only once no container uses it.
#[tokio::test]
async fn a_tcp_process_publishes_its_ports_and_mounts_its_volume() {
    let env = Env::new("tcp", DockerNetwork::AppBridge).await;
    let workdir = env.release(1, tiny_binary(), TINY_DOCKERFILE).await;
    let mut spec = env.spec(&workdir, "smtp", "");
    spec.publish = false;
    spec.container_port = Some(7000);
    let host_port = free_port();
    spec.ports = vec![PortMapping {
        host_ip: "127.0.0.1".to_owned(),
        host_port,
        container_port: 7000,
        protocol: "tcp".to_owned(),
    }];
    spec.volumes = vec![VolumeMount {
        source: VolumeSource::Named("spool".to_owned()),
        target: "/var/spool".to_owned(),
        read_only: false,
    }];
    env.rt.start(spec).await.unwrap();
    let (status, _, _) = tokio::task::spawn_blocking(move || http_get(host_port, "/up"))
        .await
        .unwrap();
    assert_eq!(status, 200, "the published port does not answer");

    let volume = format!("wharf-{}-spool", env.app);
    let labels = docker().await.inspect_volume(&volume).await.unwrap().labels;
    assert_eq!(
        labels.get("wharf.volume").map(String::as_str),
        Some("spool")
    );
    assert_eq!(labels.get("wharf.app"), Some(&env.app));
    let listed = env.rt.volumes(&env.app).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (listed[0].name.as_str(), listed[0].location.as_str()),
        ("spool", volume.as_str())
    );
    assert!(
        listed[0].size_bytes.is_some(),
        "run as root, the size is known"
    );

    let err = env.rt.remove_volume(&env.app, "spool").await.unwrap_err();
    assert!(
        err.to_string().contains("another container uses it"),
        "{err}"
    );
    env.rt.shutdown().await;
    assert!(env.rt.remove_volume(&env.app, "spool").await.unwrap());
    assert!(!env.rt.remove_volume(&env.app, "spool").await.unwrap());
    env.rt.remove_network(&env.app).await.unwrap();
}

#[tokio::test]
async fn a_crashed_container_is_reported_and_started_again() {
    let env = Env::new("crash", DockerNetwork::Host).await;
    let workdir = env.release(1, hello_binary(), HELLO_DOCKERFILE).await;
    let mut events = env.rt.events();
    let spec = env.spec(&workdir, "web", "/hello");
    let id = spec.id.clone();
    let port = spec.port;
    let pid = env.rt.start(spec).await.unwrap();
    assert!(matches!(
        next_event(&mut events, &id).await,
        RuntimeEvent::Started { .. }
    ));
    tokio::task::spawn_blocking(move || http_get(port, "/up"))
        .await
        .unwrap();

    let restart_in = kill9_then_exited(pid, &mut events, &id).await;
    assert_eq!(restart_in, Some(Duration::from_millis(100)));
    let new_pid = match next_event(&mut events, &id).await {
        RuntimeEvent::Started { pid, .. } => pid,
        other => panic!("expected Started, got {other:?}"),
    };
    assert_ne!(new_pid, pid);
    assert_eq!(env.rt.state(&id), InstanceState::Running { pid: new_pid });
    let (status, _, _) = tokio::task::spawn_blocking(move || http_get(port, "/up"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    env.rt.stop(&id).await.unwrap();
    assert!(!container_exists(&format!("wharf-{id}")).await);
}

#[tokio::test]
async fn run_task_reports_exit_codes_output_and_timeouts() {
    let env = Env::new("task", DockerNetwork::AppBridge).await;
    let hello = env.release(1, hello_binary(), HELLO_DOCKERFILE).await;

    // hello refuses a bad setting with exit code 2.
    let outcome = env
        .rt
        .run_task(env.task(&hello, "/hello", &[("HELLO_FAILURE_RATE", "abc")]))
        .await
        .unwrap();
    assert_eq!(outcome.code, Some(2));
    assert!(!outcome.success());
    assert!(
        outcome
            .tail
            .iter()
            .any(|l| l.contains("HELLO_FAILURE_RATE")),
        "{:?}",
        outcome.tail
    );
    let log = env.rt.logs_dir(&env.app).join("release-1-release.log");
    let text = std::fs::read_to_string(log).unwrap();
    assert!(text.contains("stderr hello: HELLO_FAILURE_RATE"), "{text}");

    // A server that outlives its timeout is stopped.
    let mut task = env.task(&hello, "", &[]);
    task.timeout = Duration::from_secs(1);
    let outcome = env.rt.run_task(task).await.unwrap();
    assert!(outcome.timed_out);
    assert!(!outcome.success());

    // An argv with quoting, exit codes 0 and 7.
    let tiny = {
        let src = env.source("tiny", tiny_binary(), TINY_DOCKERFILE);
        env.rt
            .prepare_release(&common::source(&env.app, 2, &src))
            .await
            .unwrap()
    };
    let outcome = env
        .rt
        .run_task(env.task(&tiny, "/tiny exit '0'", &[]))
        .await
        .unwrap();
    assert!(outcome.success(), "{outcome:?}");
    assert_eq!(outcome.tail, vec!["tiny: exiting with 0"]);
    let outcome = env
        .rt
        .run_task(env.task(&tiny, "/tiny exit 7", &[]))
        .await
        .unwrap();
    assert_eq!(outcome.code, Some(7));

    // Shell syntax is refused up front.
    let err = env
        .rt
        .run_task(env.task(&tiny, "/tiny exit 0 && /tiny", &[]))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("shell syntax"), "{err}");

    // No task container is left behind.
    let filters = HashMap::from([("label", vec![format!("wharf.app={}", env.app)])]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    assert!(
        docker()
            .await
            .list_containers(Some(options))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Creates and starts a labelled `tiny` container as an earlier server would have.
async fn leftover(image: &str, name: &str, data_dir: &Path, app: &str, instance: &str) {
    let docker = docker().await;
    let body = ContainerCreateBody {
        image: Some(image.to_owned()),
        env: Some(vec![format!("PORT={}", free_port())]),
        labels: Some(HashMap::from([
            (
                "wharf.data-dir".to_owned(),
                data_dir.to_string_lossy().into_owned(),
            ),
            ("wharf.app".to_owned(), app.to_owned()),
            ("wharf.instance".to_owned(), instance.to_owned()),
        ])),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::default().name(name).build();
    docker.create_container(Some(options), body).await.unwrap();
    docker.start_container(name, None).await.unwrap();
}

#[tokio::test]
async fn kill_leftovers_removes_only_this_data_dirs_containers() {
    let env = Env::new("leftovers", DockerNetwork::AppBridge).await;
    let workdir = env.release(1, tiny_binary(), TINY_DOCKERFILE).await;
    let image = std::fs::read_to_string(workdir.join("image")).unwrap();
    let image = image.trim();
    let other_dir = tempfile::tempdir().unwrap();
    let other_data = other_dir.path().canonicalize().unwrap();
    let _other_cleanup = Cleanup {
        app: env.app.clone(),
        data_dir: other_data.clone(),
    };
    let mine = format!("wharf-{}-old-0", env.app);
    let theirs = format!("wharf-{}-other-0", env.app);
    leftover(image, &mine, env.rt.data_dir(), &env.app, "old-0").await;
    leftover(image, &theirs, &other_data, &env.app, "other-0").await;
    // A live instance of this runtime is no leftover.
    let spec = env.spec(&workdir, "web", "");
    let live = spec.id.clone();
    env.rt.start(spec).await.unwrap();

    let found = env
        .rt
        .kill_leftovers(None, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].instance.as_deref(), Some("old-0"));
    assert!(found[0].pid > 1);
    assert!(!container_exists(&mine).await);
    assert!(container_exists(&theirs).await);
    assert!(matches!(env.rt.state(&live), InstanceState::Running { .. }));
    assert!(container_exists(&format!("wharf-{live}")).await);
    // Nothing left the second time.
    assert!(
        env.rt
            .kill_leftovers(None, Duration::from_secs(1))
            .await
            .unwrap()
            .is_empty()
    );
    env.rt.shutdown().await;
}

// ------------------------------------------------ busybox-based tests

/// A shell image: static busybox with its applets linked into /bin (an
/// exec-form `RUN` needs no shell in the image).
const BUSYBOX_DOCKERFILE: &str = "FROM scratch\nCOPY busybox /bin/busybox\n\
    RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nCMD [\"/bin/sh\"]\n";

/// A process that logs a tick every 100 ms and exits 0 on SIGTERM (as
/// PID 1 it would ignore SIGTERM without the trap).
const TICKER: &str = r#"/bin/sh -c 'trap "echo bye; exit 0" TERM; i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.1; done'"#;

fn busybox() -> &'static Path {
    let path = Path::new("/bin/busybox");
    assert!(
        path.is_file(),
        "these tests need a static /bin/busybox (Debian: apt-get install busybox-static)"
    );
    path
}

impl Env {
    async fn busybox_release(&self, release: u64) -> PathBuf {
        self.release(release, busybox(), BUSYBOX_DOCKERFILE).await
    }

    /// The error of a `prepare_release` that must fail.
    async fn prepare_error(&self, source: &ReleaseSource) -> String {
        self.rt
            .prepare_release(source)
            .await
            .unwrap_err()
            .to_string()
    }

    fn source_of(&self, release: u64, dir: &Path) -> ReleaseSource {
        common::source(&self.app, release, dir)
    }

    fn container(&self, id: &str) -> String {
        format!("wharf-{id}")
    }
}

async fn inspect(name: &str) -> bollard::models::ContainerInspectResponse {
    docker()
        .await
        .inspect_container(name, None::<InspectContainerOptions>)
        .await
        .unwrap()
}

/// Log lines received so far, without waiting.
fn drain(rx: &mut tokio::sync::broadcast::Receiver<LogLine>) -> Vec<LogLine> {
    let mut lines = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(line) => lines.push(line),
            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {}
            Err(_) => return lines,
        }
    }
}

/// A rebuild of unchanged sources (the next release of the same tree) is a
/// full cache hit: every step of the engine's own output says "Using
/// cache", no step runs a container, and the image is the same.
#[tokio::test]
async fn an_unchanged_rebuild_is_a_full_cache_hit() {
    let env = Env::new("cache", DockerNetwork::AppBridge).await;
    // A first layer of its own: the engine's cache is shared with the
    // other tests' builds, which must not be taken for this one's.
    let src = env.source(
        "src",
        busybox(),
        "FROM scratch\nCOPY marker /marker\nCOPY busybox /bin/busybox\nENV A=1\nCMD [\"/bin/busybox\", \"true\"]\n",
    );
    std::fs::write(src.join("marker"), &env.app).unwrap();
    let first = env
        .rt
        .prepare_release(&env.source_of(1, &src))
        .await
        .unwrap();
    let mut logs = env.rt.log_lines();
    let second = env
        .rt
        .prepare_release(&env.source_of(2, &src))
        .await
        .unwrap();
    let image = |dir: &Path| std::fs::read_to_string(dir.join("image")).unwrap();
    assert_eq!(
        image(&first),
        image(&second),
        "an unchanged rebuild makes the same image"
    );
    let lines: Vec<String> = drain(&mut logs)
        .into_iter()
        .filter(|l| l.app == env.app && l.process == "build" && l.release == 2)
        .map(|l| l.line)
        .collect();
    let steps = lines.iter().filter(|l| l.starts_with("Step ")).count();
    let cached = lines.iter().filter(|l| l.contains("Using cache")).count();
    // FROM scratch is no cached layer; every other step (the labels too).
    assert!(steps >= 6, "{lines:#?}");
    assert_eq!(cached, steps - 1, "{lines:#?}");
    assert!(
        !lines.iter().any(|l| l.contains("Running in")),
        "{lines:#?}"
    );

    // One changed file: the steps from its COPY on are built again.
    std::fs::write(src.join("marker"), format!("{} changed", env.app)).unwrap();
    let third = env
        .rt
        .prepare_release(&env.source_of(3, &src))
        .await
        .unwrap();
    assert_ne!(image(&third), image(&second));
}

#[tokio::test]
async fn build_honours_dockerfile_context_target_args_and_version() {
    let env = Env::new("buildopts", DockerNetwork::AppBridge).await;
    let secret = format!("s3cr3t-{}-value", std::process::id());
    let src = env.dir.path().join("src");
    std::fs::create_dir_all(src.join("docker")).unwrap();
    std::fs::create_dir_all(src.join("ctx")).unwrap();
    std::fs::copy(busybox(), src.join("ctx/busybox")).unwrap();
    // Outside the context dir; the stages after `final` would fail.
    std::fs::write(
        src.join("docker/app.Dockerfile"),
        "FROM scratch AS base\nCOPY busybox /bin/busybox\n\
         RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         FROM base AS final\nARG SECRET\nENV SECRET=$SECRET\n\
         RUN echo \"building with $SECRET\"\n\
         CMD [\"/bin/sh\", \"-c\", \"echo secret=$SECRET\"]\n\
         FROM base AS failing\nARG SECRET\nRUN echo \"leaking $SECRET\"; exit 3\n\
         FROM base AS broken\nCOPY missing.txt /x\n",
    )
    .unwrap();
    let mut source = env.source_of(1, &src);
    source.version = "v1.0+build/7".to_owned();
    source.build = DockerBuild {
        dockerfile: "docker/app.Dockerfile".into(),
        context: "ctx".into(),
        target: Some("final".to_owned()),
        args: BTreeMap::from([("SECRET".to_owned(), secret.clone())]),
    };
    let mut logs = env.rt.log_lines();
    let dir = env.rt.prepare_release(&source).await.unwrap();
    let image = std::fs::read_to_string(dir.join("image")).unwrap();
    let tag = format!("wharf/{}:v1.0-build-7", env.app);
    assert_eq!(
        std::fs::read_to_string(dir.join("tag")).unwrap().trim(),
        tag
    );
    let inspected = docker().await.inspect_image(&tag).await.unwrap();
    assert_eq!(inspected.id.as_deref(), Some(image.trim()));
    let config = inspected.config.unwrap();
    let labels = config.labels.unwrap();
    assert!(
        !labels.contains_key("wharf.release") && !labels.contains_key("wharf.app"),
        "only the data dir: a release number would make every rebuild a cache miss, \
         and every label is one more step after a changed file: {labels:?}"
    );
    assert_eq!(
        labels["wharf.data-dir"],
        env.rt.data_dir().to_string_lossy()
    );
    assert!(
        config.env.unwrap().contains(&format!("SECRET={secret}")),
        "the build arg did not reach the image"
    );

    // The output streamed as process "build", the secret masked everywhere.
    let streamed = drain(&mut logs);
    assert!(
        streamed
            .iter()
            .any(|l| l.process == "build" && l.line.contains("building with ***")),
        "{streamed:?}"
    );
    let logged = env
        .rt
        .tail_logs(&env.app, Some("build"), 1000)
        .await
        .unwrap();
    assert!(logged.iter().any(|l| l.line.contains("building with ***")));
    for line in streamed.iter().chain(&logged) {
        assert!(!line.line.contains(&secret), "secret in {line:?}");
    }
    let file =
        std::fs::read_to_string(env.rt.logs_dir(&env.app).join("release-1-build.log")).unwrap();
    assert!(!file.contains(&secret));

    // Inside the image the arg is there.
    let outcome = env.rt.run_task(env.task(&dir, "", &[])).await.unwrap();
    assert_eq!(outcome.tail, vec![format!("secret={secret}")]);

    // A failing stage: neither the error nor the logs show the value.
    let mut failing = source.clone();
    failing.release = 2;
    failing.build.target = Some("failing".to_owned());
    let err = env.prepare_error(&failing).await;
    assert!(err.contains("leaking ***"), "{err}");
    assert!(!err.contains(&secret), "{err}");
    assert!(!env.rt.release_dir(&env.app, 2).exists());

    // A Dockerfile that is not there is named in the error.
    let mut missing = source.clone();
    missing.release = 3;
    missing.build.dockerfile = "nope/Dockerfile".into();
    let err = env.prepare_error(&missing).await;
    assert!(
        err.starts_with(&format!(
            "no Dockerfile at {}: ",
            src.join("nope/Dockerfile").display()
        )),
        "{err}"
    );

    // The ignore file decides what the engine sees: the context's
    // `.dockerignore`, unless the Dockerfile has its own.
    std::fs::write(src.join("ctx/big.bin"), vec![0_u8; 1 << 20]).unwrap();
    std::fs::write(src.join("ctx/.dockerignore"), "*\n!busybox\n").unwrap();
    let mut ignoring = source.clone();
    ignoring.release = 4;
    env.rt.prepare_release(&ignoring).await.unwrap();
    let own = src.join("docker/app.Dockerfile.dockerignore");
    std::fs::write(&own, "# not for this image\nbusybox\n").unwrap();
    ignoring.release = 5;
    let err = env.prepare_error(&ignoring).await;
    assert!(err.contains("stat busybox: file does not exist"), "{err}");
    assert!(!env.rt.release_dir(&env.app, 5).exists());
    std::fs::write(&own, "busybox\n[a-\n").unwrap();
    let err = env.prepare_error(&ignoring).await;
    assert!(
        err.starts_with(&format!("build ignore file {}:2: ", own.display())),
        "{err}"
    );
}

#[tokio::test]
async fn prebuilt_images_are_tagged_and_missing_ones_explained() {
    let env = Env::new("prebuilt", DockerNetwork::AppBridge).await;
    let first = env.busybox_release(1).await;
    let id = std::fs::read_to_string(first.join("image")).unwrap();
    let mut logs = env.rt.log_lines();

    let mut source = env.source_of(2, env.dir.path());
    source.version = "v2".to_owned();
    source.image = Some(format!("wharf/{}:r1", env.app));
    let dir = env.rt.prepare_release(&source).await.unwrap();
    assert_eq!(std::fs::read_to_string(dir.join("image")).unwrap(), id);
    let v2 = format!("wharf/{}:v2", env.app);
    let inspected = docker().await.inspect_image(&v2).await.unwrap();
    assert_eq!(inspected.id.as_deref(), Some(id.trim()));
    let line = wait_line(&mut logs, &format!("{}-r2-build", env.app), |_| true).await;
    assert!(line.line.contains("using prebuilt image"), "{line:?}");

    let missing = format!("wharf-missing-{}:nope", std::process::id());
    let mut source = env.source_of(3, env.dir.path());
    source.image = Some(missing.clone());
    let err = env.prepare_error(&source).await;
    assert!(
        err.starts_with(&format!(
            "image {missing} is not in the Docker engine and could not be pulled"
        )),
        "{err}"
    );
    assert!(err.contains("build or load it"), "{err}");
    assert!(!env.rt.release_dir(&env.app, 3).exists());

    // Release 2 shares release 1's image: only its tag goes.
    env.rt.remove_release(&env.app, 2).await.unwrap();
    assert!(docker().await.inspect_image(&v2).await.is_err());
    let r1 = format!("wharf/{}:r1", env.app);
    assert!(docker().await.inspect_image(&r1).await.is_ok());
    env.rt.remove_release(&env.app, 1).await.unwrap();
    assert!(docker().await.inspect_image(&r1).await.is_err());
    assert!(docker().await.inspect_image(id.trim()).await.is_err());
}

#[tokio::test]
async fn limits_exec_and_restart_policies() {
    let env = Env::new("limits", DockerNetwork::AppBridge).await;
    let workdir = env.busybox_release(1).await;
    let mut events = env.rt.events();
    let mut spec = env.spec(&workdir, "web", TICKER);
    spec.limits = Limits {
        memory_bytes: Some(64 * 1024 * 1024),
        cpus: Some(0.5),
    };
    let id = spec.id.clone();
    env.rt.start(spec).await.unwrap();
    let host = inspect(&env.container(&id)).await.host_config.unwrap();
    assert_eq!(host.memory, Some(64 * 1024 * 1024));
    assert_eq!(host.nano_cpus, Some(500_000_000));

    // exec: both streams, line by line, as the instance's process; the code.
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let argv = ["/bin/sh", "-c", "echo out; echo err >&2; echo more; exit 3"];
    let code = env
        .rt
        .exec(&id, argv.iter().map(|a| (*a).to_owned()).collect(), tx)
        .await
        .unwrap();
    assert_eq!(code, 3);
    let mut lines = Vec::new();
    while let Some(line) = rx.recv().await {
        assert_eq!(line.process, "web");
        assert_eq!(line.instance, id);
        assert_eq!(line.app, env.app);
        lines.push((line.stream.as_str(), line.line));
    }
    lines.sort();
    assert_eq!(
        lines,
        vec![
            ("stderr", "err".to_owned()),
            ("stdout", "more".to_owned()),
            ("stdout", "out".to_owned()),
        ]
    );
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let err = env
        .rt
        .exec("nope-r1-web-0", vec!["/bin/true".to_owned()], tx)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("instance nope-r1-web-0 is not running"),
        "{err}"
    );
    env.rt.stop(&id).await.unwrap();

    // Never: one Exited without a restart, then Stopped; the container goes.
    let mut once = env.spec(&workdir, "once", "/bin/sh -c 'exit 3'");
    once.restart = RestartPolicy::Never;
    let once_id = once.id.clone();
    env.rt.start(once).await.unwrap();
    let ended = |code| {
        vec![
            RuntimeEvent::Exited {
                id: once_id.clone(),
                code: Some(code),
                signal: None,
                restart_in: None,
            },
            RuntimeEvent::Stopped {
                id: once_id.clone(),
                killed: false,
            },
        ]
    };
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match next_event(&mut events, &once_id).await {
            RuntimeEvent::Started { .. } => {}
            other => seen.push(other),
        }
    }
    assert_eq!(seen, ended(3));
    assert_eq!(env.rt.state(&once_id), InstanceState::Stopped);
    assert!(!container_exists(&env.container(&once_id)).await);

    // OnFailure: exit 0 ends it too.
    let mut done = env.spec(&workdir, "once", "/bin/sh -c 'exit 0'");
    done.restart = RestartPolicy::OnFailure;
    env.rt.start(done).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match next_event(&mut events, &once_id).await {
            RuntimeEvent::Started { .. } => {}
            other => seen.push(other),
        }
    }
    assert_eq!(seen, ended(0));
}

#[test]
fn a_second_runtime_adopts_the_containers_of_a_crashed_one() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (env, spec) = rt.block_on(async {
        let env = Env::new("adopt", DockerNetwork::AppBridge).await;
        let workdir = env.busybox_release(1).await;
        let spec = env.spec(&workdir, "web", TICKER);
        (env, spec)
    });
    let data_dir = env.rt.data_dir().to_owned();

    // The "crashed" server: its own tokio runtime, dropped with its tasks
    // while the container runs on.
    let first = spec.clone();
    let old_pid = std::thread::spawn(move || {
        let crashed = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let pid = crashed.block_on(async {
            let old = connect(&data_dir, DockerNetwork::AppBridge).await;
            // Dropped with its runtime: nothing stops the container.
            old.start(first).await.unwrap()
        });
        drop(crashed);
        pid
    })
    .join()
    .unwrap();

    rt.block_on(async {
        let id = spec.id.clone();
        let name = env.container(&id);
        assert!(inspect(&name).await.state.unwrap().running.unwrap());
        // Not what the caller would start: not adopted.
        let mut other_port = spec.clone();
        other_port.port = free_port();
        assert_eq!(env.rt.adopt(other_port).await.unwrap(), None);
        let mut other_release = spec.clone();
        other_release.release = 2;
        assert_eq!(env.rt.adopt(other_release).await.unwrap(), None);
        assert!(env.rt.instances().is_empty());

        let mut logs = env.rt.log_lines();
        let mut events = env.rt.events();
        let pid = env.rt.adopt(spec.clone()).await.unwrap();
        assert_eq!(pid, Some(old_pid));
        assert_eq!(env.rt.state(&id), InstanceState::Running { pid: old_pid });
        assert!(matches!(
            next_event(&mut events, &id).await,
            RuntimeEvent::Started { pid, .. } if pid == old_pid
        ));
        // Its output flows into this runtime's broadcast and log file.
        let line = wait_line(&mut logs, &id, |l| l.line.starts_with("tick ")).await;
        assert_eq!(line.process, "web");
        let log = env.rt.logs_dir(&env.app).join(format!("{id}.log"));
        common::wait_file_contains(&log, &format!("stdout {}", line.line)).await;
        // Adopted means live: no leftover.
        assert!(
            env.rt
                .kill_leftovers(None, Duration::from_secs(1))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(container_exists(&name).await);

        // Its exit is noticed and it is started again, by this runtime.
        let restart_in = kill9_then_exited(old_pid, &mut events, &id).await;
        assert!(restart_in.is_some());
        // The old run's output is all in by `Exited` (reaped first), and
        // the new run starts after the backoff: drop the old lines now, as
        // the new run's first ones may arrive before its `Started` does.
        drain(&mut logs);
        assert!(matches!(
            next_event(&mut events, &id).await,
            RuntimeEvent::Started { .. }
        ));
        // Up (its TERM trap set) before it is stopped.
        wait_line(&mut logs, &id, |l| l.line == "tick 0").await;
        env.rt.stop(&id).await.unwrap();
        assert!(!container_exists(&name).await);
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("stdout bye"), "{text}");
    });
    rt.block_on(async move { drop(env) });
}

/// The output of accessory `name` so far.
async fn accessory_output(env: &Env, name: &str) -> Vec<String> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    env.rt
        .accessory_logs(&env.app, name, 100, false, tx)
        .await
        .unwrap();
    let mut lines = Vec::new();
    while let Some(line) = rx.recv().await {
        lines.push(line.line);
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accessory_built_from_the_app_source() {
    let env = Env::new("accbuild", DockerNetwork::AppBridge).await;
    let dockerfile = format!(
        "{BUSYBOX_DOCKERFILE}COPY version /version\n\
         CMD [\"/bin/sh\", \"-c\", \"cat /version; trap 'exit 0' TERM; while :; do sleep 0.1; done\"]\n"
    );
    let src = env.source("app", busybox(), &dockerfile);
    std::fs::write(src.join("version"), "v1\n").unwrap();
    let tag = format!("wharf/{}:accessory-kv", env.app);
    let container = format!("wharf-{}-kv", env.app);
    let mut spec = AccessorySpec {
        app: env.app.clone(),
        name: "kv".to_owned(),
        image: String::new(),
        build: Some(AccessoryBuild {
            dir: src.clone(),
            build: DockerBuild::default(),
            rebuild: false,
        }),
        command: None,
        env: BTreeMap::new(),
        ports: Vec::new(),
        volumes: Vec::new(),
        aliases: Vec::new(),
        health: None,
        limits: Limits::default(),
    };
    let mut logs = env.rt.log_lines();

    // No image yet: built, tagged, labelled, its output logged as the
    // accessory's build.
    let status = env.rt.boot_accessory(&spec).await.unwrap();
    assert_eq!(
        (status.state.as_str(), status.image.as_str()),
        ("running", tag.as_str())
    );
    let built = docker().await.inspect_image(&tag).await.unwrap();
    let labels = built.config.unwrap().labels.unwrap();
    assert_eq!(labels["wharf.accessory"], "kv");
    assert_eq!(labels["wharf.app"], env.app);
    assert!(!labels.contains_key("wharf.release"));
    let first = inspect(&container).await;
    assert_eq!(first.image, built.id);
    assert_eq!(accessory_output(&env, "kv").await, ["v1"]);
    let build_log = format!("{}-kv-build", env.app);
    assert!(
        drain(&mut logs)
            .iter()
            .any(|l| l.instance == build_log && l.line.contains("Successfully tagged"))
    );
    let file =
        std::fs::read_to_string(env.rt.logs_dir(&env.app).join("accessory-kv-build.log")).unwrap();
    assert!(file.contains("COPY version /version"), "{file}");

    // A deploy's boot does not rebuild: the source changed, the container
    // stays.
    std::fs::write(src.join("version"), "v2\n").unwrap();
    env.rt.boot_accessory(&spec).await.unwrap();
    assert_eq!(inspect(&container).await.id, first.id);

    // `wharf accessory boot` rebuilds, and the new image replaces the
    // container; rebuilding an unchanged source leaves it alone.
    spec.build.as_mut().unwrap().rebuild = true;
    env.rt.boot_accessory(&spec).await.unwrap();
    let second = inspect(&container).await;
    assert_ne!(second.id, first.id);
    assert_ne!(second.image, first.image);
    assert_eq!(accessory_output(&env, "kv").await, ["v2"]);
    env.rt.boot_accessory(&spec).await.unwrap();
    assert_eq!(inspect(&container).await.id, second.id);

    // A build that fails is the boot's error, and the running one stays.
    std::fs::write(src.join("Dockerfile"), "FROM scratch\nCOPY missing /x\n").unwrap();
    let err = env.rt.boot_accessory(&spec).await.unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "could not build image {tag} from {}",
            src.display()
        )),
        "{err}"
    );
    assert_eq!(inspect(&container).await.id, second.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accessory_with_a_named_volume_keeps_its_data() {
    let env = Env::new("acc", DockerNetwork::AppBridge).await;
    let workdir = env.busybox_release(1).await;
    let image = format!("wharf/{}:r1", env.app);
    let port = free_port();
    let command = r#"/bin/sh -c 'echo booted $TOKEN; mkdir -p /data/www; [ -f /data/www/index.html ] || echo first boot $TOKEN > /data/www/index.html; httpd -p 8080 -h /data/www; trap "exit 0" TERM; while :; do sleep 0.1; done'"#;
    let spec = AccessorySpec {
        app: env.app.clone(),
        name: "store".to_owned(),
        image: image.clone(),
        build: None,
        command: Some(command.to_owned()),
        env: BTreeMap::from([("TOKEN".to_owned(), "v1".to_owned())]),
        ports: vec![PortMapping {
            host_ip: "127.0.0.1".to_owned(),
            host_port: port,
            container_port: 8080,
            protocol: "tcp".to_owned(),
        }],
        volumes: vec![VolumeMount {
            source: VolumeSource::Named("data".to_owned()),
            target: "/data".to_owned(),
            read_only: false,
        }],
        aliases: Vec::new(),
        health: Some(AccessoryHealth {
            command: "wget -q -O /dev/null http://127.0.0.1:8080/index.html".to_owned(),
            interval: Duration::from_millis(200),
            timeout: Duration::from_secs(2),
            retries: 3,
            start_timeout: Duration::from_secs(20),
        }),
        limits: Limits {
            memory_bytes: Some(32 * 1024 * 1024),
            cpus: None,
        },
    };
    let container = format!("wharf-{}-store", env.app);
    let volume = format!("wharf-{}-data", env.app);
    let status = env.rt.boot_accessory(&spec).await.unwrap();
    assert_eq!(status.state, "running");
    assert_eq!(status.health.as_deref(), Some("healthy"));
    assert_eq!(status.container, container);
    let info = inspect(&container).await;
    let created = info.id.clone().unwrap();
    let labels = info.config.as_ref().unwrap().labels.clone().unwrap();
    assert_eq!(labels["wharf.accessory"], "store");
    assert!(
        labels.values().all(|v| !v.contains("v1")),
        "env value in a label: {labels:?}"
    );
    let host = info.host_config.unwrap();
    assert_eq!(host.memory, Some(32 * 1024 * 1024));
    assert_eq!(
        host.restart_policy.unwrap().name.unwrap().to_string(),
        "unless-stopped"
    );
    let volume_labels = docker().await.inspect_volume(&volume).await.unwrap().labels;
    assert_eq!(volume_labels["wharf.accessory"], "store");

    // Published on the host, and reachable by name from the app's network.
    let (status_code, _, body) = tokio::task::spawn_blocking(move || http_get(port, "/index.html"))
        .await
        .unwrap();
    assert_eq!((status_code, body.as_str()), (200, "first boot v1\n"));
    let fetch = "wget -q -O - http://store:8080/index.html";
    let outcome = env
        .rt
        .run_task(env.task(&workdir, fetch, &[]))
        .await
        .unwrap();
    assert_eq!(outcome.tail, vec!["first boot v1"], "{outcome:?}");

    // Booting it again unchanged leaves it alone.
    env.rt.boot_accessory(&spec).await.unwrap();
    assert_eq!(inspect(&container).await.id.unwrap(), created);
    // Stopped, then started again by a boot.
    env.rt.stop_accessory(&env.app, "store").await.unwrap();
    let stopped = env.rt.accessory_status(&env.app, "store").await.unwrap();
    assert_eq!(stopped.state, "exited");
    env.rt.boot_accessory(&spec).await.unwrap();
    assert_eq!(inspect(&container).await.id.unwrap(), created);

    // A changed env recreates the container; the volume keeps the file.
    let mut changed = spec.clone();
    changed.env.insert("TOKEN".to_owned(), "v2".to_owned());
    let status = env.rt.boot_accessory(&changed).await.unwrap();
    assert_eq!(status.health.as_deref(), Some("healthy"));
    assert_ne!(inspect(&container).await.id.unwrap(), created);
    let outcome = env
        .rt
        .run_task(env.task(&workdir, fetch, &[]))
        .await
        .unwrap();
    assert_eq!(outcome.tail, vec!["first boot v1"], "{outcome:?}");
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    env.rt
        .accessory_logs(&env.app, "store", 10, false, tx)
        .await
        .unwrap();
    let mut lines = Vec::new();
    while let Some(line) = rx.recv().await {
        lines.push(line.line);
    }
    assert_eq!(lines, vec!["booted v2"]);

    // Never a leftover, never pruned.
    assert!(
        env.rt
            .kill_leftovers(None, Duration::from_secs(1))
            .await
            .unwrap()
            .is_empty()
    );
    env.rt.stop_accessory(&env.app, "store").await.unwrap();
    let report = env.rt.prune(&[]).await.unwrap();
    assert!(report.containers.is_empty(), "{report:?}");
    assert!(container_exists(&container).await);

    // One that exits while starting: the error has its output.
    let mut bad = spec.clone();
    bad.name = "bad".to_owned();
    bad.ports.clear();
    bad.volumes.clear();
    bad.health = None;
    bad.command = Some("/bin/sh -c 'echo cannot start; exit 4'".to_owned());
    let err = env.rt.boot_accessory(&bad).await.unwrap_err().to_string();
    assert!(
        err.contains("exited with code 4 while starting, and was stopped"),
        "{err}"
    );
    assert!(err.contains("cannot start"), "{err}");
    // Stopped, not left to the engine's restart loop; its output is kept.
    let status = env.rt.accessory_status(&env.app, "bad").await.unwrap();
    assert_eq!(status.state, "exited", "{status:?}");
    assert!(
        accessory_output(&env, "bad")
            .await
            .contains(&"cannot start".to_owned())
    );
    env.rt
        .remove_accessory(&env.app, "bad", true)
        .await
        .unwrap();

    // Removal: the container, and with `volumes` its named volume.
    env.rt
        .remove_accessory(&env.app, "store", true)
        .await
        .unwrap();
    let status = env.rt.accessory_status(&env.app, "store").await.unwrap();
    assert_eq!(status.state, "missing");
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let err = env
        .rt
        .accessory_logs(&env.app, "store", 10, false, tx)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("has no container"), "{err}");
    assert!(docker().await.inspect_volume(&volume).await.is_err());
}

#[tokio::test]
async fn prune_removes_stopped_containers_and_images_not_kept() {
    let env = Env::new("prune", DockerNetwork::AppBridge).await;
    // Three different images (an unchanged rebuild would be one).
    for release in 1..=3 {
        let dockerfile = format!("{BUSYBOX_DOCKERFILE}ENV RELEASE={release}\n");
        env.release(release, busybox(), &dockerfile).await;
    }
    let image3 = std::fs::read_to_string(env.rt.release_dir(&env.app, 3).join("image")).unwrap();
    // A stopped container and a stopped accessory, both of this data dir.
    let docker = docker().await;
    let data_dir = env.rt.data_dir().to_string_lossy().into_owned();
    for (name, accessory) in [("old", false), ("acc", true)] {
        let mut labels = HashMap::from([
            ("wharf.data-dir".to_owned(), data_dir.clone()),
            ("wharf.app".to_owned(), env.app.clone()),
        ]);
        if accessory {
            labels.insert("wharf.accessory".to_owned(), name.to_owned());
        }
        let body = ContainerCreateBody {
            image: Some(image3.trim().to_owned()),
            labels: Some(labels),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default()
            .name(&format!("wharf-{}-{name}", env.app))
            .build();
        docker.create_container(Some(options), body).await.unwrap();
    }

    let report = env.rt.prune(&[(env.app.clone(), 3)]).await.unwrap();
    let mut images = report.images.clone();
    images.sort();
    assert_eq!(
        images,
        vec![
            format!("wharf/{}:r1", env.app),
            format!("wharf/{}:r2", env.app)
        ]
    );
    assert_eq!(report.containers, vec![format!("wharf-{}-old", env.app)]);
    assert!(report.reclaimed_bytes > 0, "{report:?}");
    for release in 1..=2 {
        let tag = format!("wharf/{}:r{release}", env.app);
        assert!(docker.inspect_image(&tag).await.is_err());
    }
    assert!(container_exists(&format!("wharf-{}-acc", env.app)).await);

    // Release 4 runs release 3's image: keeping 4 keeps it, and only
    // release 3's tag goes.
    let mut source = env.source_of(4, env.dir.path());
    source.image = Some(format!("wharf/{}:r3", env.app));
    env.rt.prepare_release(&source).await.unwrap();
    let report = env.rt.prune(&[(env.app.clone(), 4)]).await.unwrap();
    assert_eq!(
        report.images,
        [format!("wharf/{}:r3", env.app)],
        "{report:?}"
    );
    assert!(docker.inspect_image(image3.trim()).await.is_ok());
    assert!(
        docker
            .inspect_image(&format!("wharf/{}:r4", env.app))
            .await
            .is_ok()
    );
}

/// What a CI run said, by step.
#[derive(Default)]
struct CiLines(Vec<(String, String)>);

impl wharf_ci::Sink for CiLines {
    fn output(&mut self, step: &str, line: &str) {
        self.0.push((step.to_owned(), line.to_owned()));
    }
}

impl CiLines {
    fn of(&self, step: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(s, _)| s == step)
            .map(|(_, l)| l.as_str())
            .collect()
    }
}

fn ci_step(name: &str, run: &str) -> wharf_config::CiStep {
    wharf_config::CiStep::Run(wharf_config::CiRun {
        name: name.to_owned(),
        run: run.to_owned(),
    })
}

/// `[ci] image = "build"`: the checkout's image is built as a release's
/// (the same image id a deploy of it then gets, from cache), and each step
/// runs in a new container of it, in the image's WORKDIR, with the step's
/// env, its stdout and stderr read as one stream, its exit code reported;
/// a cancelled step's container is stopped; no container is left.
#[tokio::test]
async fn ci_steps_run_in_containers_of_the_build_image() {
    let env = Env::new("ci", DockerNetwork::AppBridge).await;
    let src = env.source(
        "ci",
        busybox(),
        "FROM scratch\nCOPY marker /app/marker\nCOPY busybox /bin/busybox\n\
         RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         WORKDIR /app\nCMD [\"/bin/sh\"]\n",
    );
    // First, and this test's own: the engine's cache picks among equal
    // layers other tests build meanwhile, and could pick another each time.
    std::fs::write(src.join("marker"), format!("{}\n", env.app)).unwrap();
    let mut logs = env.rt.log_lines();
    let launcher = env
        .rt
        .ci_launcher(&wharf_runtime::CiSource {
            app: env.app.clone(),
            dir: src.clone(),
            version: "abc123".into(),
            build: DockerBuild::default(),
        })
        .await
        .unwrap();
    assert_eq!(
        launcher.describe(),
        format!("a container of wharf/{}:ci-abc123", env.app)
    );
    assert!(
        drain(&mut logs)
            .iter()
            .any(|l| l.process == "ci-build" && l.line.contains("Step")),
        "the build's output is logged as ci-build"
    );

    let steps = [
        ci_step(
            "Where",
            "pwd; cat marker; echo \"CI=$CI TOKEN=$TOKEN\"; echo to stderr >&2",
        ),
        ci_step("Fails", "echo failing; exit 3"),
    ];
    let mut opts = wharf_ci::Options::new("/nonexistent-on-the-host");
    opts.launcher = Some(launcher.clone());
    opts.env = vec![("TOKEN".into(), "s3cret-value".into())];
    opts.secrets = vec!["s3cret-value".into()];
    let mut lines = CiLines::default();
    let report = wharf_ci::run(&steps, &opts, &mut lines).await.unwrap();
    assert_eq!(
        lines.of("Where"),
        [
            "/app",
            env.app.as_str(),
            "CI=true TOKEN=[masked]",
            "to stderr"
        ]
    );
    assert_eq!(lines.of("Fails"), ["failing"]);
    assert!(!report.ok);
    assert_eq!(report.steps[0].status, wharf_ci::Status::Passed);
    assert_eq!(report.steps[1].status, wharf_ci::Status::Failed);
    assert_eq!(report.steps[1].exit_code, Some(3));

    // A deploy of the same checkout builds the same image, from cache.
    let workdir = env
        .rt
        .prepare_release(&common::source(&env.app, 1, &src))
        .await
        .unwrap();
    let release_image = std::fs::read_to_string(workdir.join("image")).unwrap();
    let ci_image = docker()
        .await
        .inspect_image(&format!("wharf/{}:ci-abc123", env.app))
        .await
        .unwrap()
        .id
        .unwrap();
    assert_eq!(release_image.trim(), ci_image);

    // Cancelled while it runs: the container is stopped, the step
    // interrupted, well before its sleep ends.
    let steps = [ci_step("Slow", "echo started; sleep 60")];
    let mut opts = wharf_ci::Options::new("/");
    opts.launcher = Some(launcher);
    opts.stop_timeout = Duration::from_secs(1);
    let cancel = opts.cancel.clone();
    let started = Instant::now();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        cancel.cancel();
    });
    let mut lines = CiLines::default();
    let report = wharf_ci::run(&steps, &opts, &mut lines).await.unwrap();
    assert!(report.interrupted, "{report:?}");
    assert_eq!(report.steps[0].status, wharf_ci::Status::Interrupted);
    assert_eq!(lines.of("Slow"), ["started"]);
    assert!(started.elapsed() < Duration::from_secs(20));

    // Every step's container is gone.
    let filters = HashMap::from([("label", vec![format!("wharf.app={}", env.app)])]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let left = docker().await.list_containers(Some(options)).await.unwrap();
    assert!(left.is_empty(), "{left:?}");
}
