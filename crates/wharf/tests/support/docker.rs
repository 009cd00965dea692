//! The docker side of the end-to-end tests: the static `hello` binary,
//! app directories with a `FROM scratch` Dockerfile, and the engine's view
//! of what a data dir owns (containers by the `wharf.data-dir` label), for
//! assertions and for the cleanup every test does, pass or fail.
//!
//! The engine here cannot pull, so every image is built locally from the
//! statically linked example binary.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListImagesOptionsBuilder, ListVolumesOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder,
};

/// Docker e2e tests run one at a time: each builds images and runs a
/// server, and two at once on 2 cores makes health timeouts flaky.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

#[path = "../../../wharf-runtime/tests/common/static_hello.rs"]
mod shared;

pub use shared::static_hello;

/// A blocking handle on this machine's engine.
pub struct Engine {
    rt: tokio::runtime::Runtime,
    docker: Docker,
}

impl Engine {
    pub fn connect() -> Engine {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let docker = Docker::connect_with_local_defaults()
            .expect("these tests need this machine's Docker engine");
        rt.block_on(docker.ping())
            .expect("these tests need this machine's Docker engine (ping failed)");
        Engine { rt, docker }
    }

    /// Containers (running or not) carrying `wharf.data-dir=<data>`:
    /// name → (id, labels, state).
    pub fn containers(
        &self,
        data: &Path,
    ) -> HashMap<String, (String, HashMap<String, String>, String)> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("wharf.data-dir={}", data.display())],
        )]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let list = self
            .rt
            .block_on(self.docker.list_containers(Some(options)))
            .unwrap();
        list.into_iter()
            .map(|c| {
                let name = c
                    .names
                    .unwrap_or_default()
                    .first()
                    .map(|n| n.trim_start_matches('/').to_owned())
                    .unwrap_or_default();
                let state = c.state.map(|s| s.to_string()).unwrap_or_default();
                (
                    name,
                    (
                        c.id.unwrap_or_default(),
                        c.labels.unwrap_or_default(),
                        state,
                    ),
                )
            })
            .collect()
    }

    /// Running instance containers (not accessories) of a data dir, by
    /// `wharf.instance` label.
    pub fn running_instances(&self, data: &Path) -> HashMap<String, String> {
        self.containers(data)
            .into_values()
            .filter(|(_, labels, state)| {
                state == "running" && !labels.contains_key("wharf.accessory")
            })
            .filter_map(|(id, labels, _)| labels.get("wharf.instance").map(|i| (i.clone(), id)))
            .collect()
    }

    /// Containers of a data dir that are neither instances nor accessories:
    /// one-off tasks (release commands, `wharf run`).
    pub fn task_containers(&self, data: &Path) -> Vec<String> {
        self.containers(data)
            .into_iter()
            .filter(|(_, (_, labels, _))| {
                !labels.contains_key("wharf.instance") && !labels.contains_key("wharf.accessory")
            })
            .map(|(name, _)| name)
            .collect()
    }

    pub fn network_exists(&self, name: &str) -> bool {
        self.rt
            .block_on(self.docker.inspect_network(name, None))
            .is_ok()
    }

    pub fn volume_exists(&self, name: &str) -> bool {
        self.rt.block_on(self.docker.inspect_volume(name)).is_ok()
    }

    /// Tags of the images named `wharf/<app>:…`.
    pub fn app_images(&self, app: &str) -> Vec<String> {
        let filters = HashMap::from([("reference".to_string(), vec![format!("wharf/{app}")])]);
        self.rt
            .block_on(self.docker.list_images(Some(
                ListImagesOptionsBuilder::new().filters(&filters).build(),
            )))
            .unwrap_or_default()
            .into_iter()
            .flat_map(|i| i.repo_tags)
            .collect()
    }

    /// Builds the directory `context` (its `Dockerfile`) as `tag`: the
    /// local stand-in for an image a real deployment would pull.
    pub fn build_image(&self, context: &Path, tag: &str) {
        use futures_util::StreamExt as _;
        let mut archive = tar::Builder::new(Vec::new());
        archive.append_dir_all(".", context).unwrap();
        let archive = archive.into_inner().unwrap();
        let options = bollard::query_parameters::BuildImageOptionsBuilder::default()
            .t(tag)
            .rm(true)
            .build();
        self.rt.block_on(async {
            let mut stream =
                self.docker
                    .build_image(options, None, Some(bollard::body_full(archive.into())));
            while let Some(item) = stream.next().await {
                let info = item.unwrap_or_else(|e| panic!("building {tag}: {e}"));
                if let Some(error) = info.error_detail.and_then(|d| d.message) {
                    panic!("building {tag}: {error}");
                }
            }
        });
        assert!(self.image_exists(tag), "{tag} was not built");
    }

    /// The id of the image `reference` names, if the engine has it.
    pub fn image_id(&self, reference: &str) -> Option<String> {
        self.rt
            .block_on(self.docker.inspect_image(reference))
            .ok()
            .and_then(|i| i.id)
    }

    pub fn image_exists(&self, reference: &str) -> bool {
        self.rt
            .block_on(self.docker.inspect_image(reference))
            .is_ok()
    }

    /// Removes everything a test left: containers of the data dir, the
    /// apps' images, volumes and networks, and `images`.
    pub fn cleanup(&self, data: &Path, apps: &[String], images: &[String]) {
        let containers = self.containers(data);
        self.rt.block_on(async {
            let remove = RemoveContainerOptionsBuilder::new()
                .force(true)
                .v(true)
                .build();
            for name in containers.into_keys() {
                let _ = self
                    .docker
                    .remove_container(&name, Some(remove.clone()))
                    .await;
            }
            for app in apps {
                let filters =
                    HashMap::from([("reference".to_string(), vec![format!("wharf/{app}")])]);
                let list = self
                    .docker
                    .list_images(Some(
                        ListImagesOptionsBuilder::new().filters(&filters).build(),
                    ))
                    .await
                    .unwrap_or_default();
                for image in list {
                    let _ = self
                        .docker
                        .remove_image(
                            &image.id,
                            Some(RemoveImageOptionsBuilder::new().force(true).build()),
                            None,
                        )
                        .await;
                }
                let volumes = self
                    .docker
                    .list_volumes(Some(ListVolumesOptionsBuilder::new().build()))
                    .await
                    .ok()
                    .and_then(|v| v.volumes)
                    .unwrap_or_default();
                for v in volumes {
                    if v.name.starts_with(&format!("wharf-{app}-")) {
                        let _ = self
                            .docker
                            .remove_volume(
                                &v.name,
                                None::<bollard::query_parameters::RemoveVolumeOptions>,
                            )
                            .await;
                    }
                }
                let _ = self.docker.remove_network(&format!("wharf-{app}")).await;
            }
            for image in images {
                let _ = self
                    .docker
                    .remove_image(
                        image,
                        Some(RemoveImageOptionsBuilder::new().force(true).build()),
                        None,
                    )
                    .await;
            }
        });
    }
}

/// A data dir for a docker test and its cleanup on drop, so a failing test
/// leaves nothing behind either. Create it *before* the test's servers:
/// locals drop in reverse order, so every server is dead (and cannot
/// restart a container) by the time this removes what they made.
pub struct Cleanup {
    pub engine: Engine,
    /// `<tmp>/data`, canonical, as the servers label their containers.
    pub data: PathBuf,
    pub apps: Vec<String>,
    pub images: Vec<String>,
    _tmp: tempfile::TempDir,
}

impl Cleanup {
    pub fn new(apps: &[&str], images: &[&str]) -> Cleanup {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        Cleanup {
            engine: Engine::connect(),
            data: data.canonicalize().unwrap(),
            apps: apps.iter().map(|a| a.to_string()).collect(),
            images: images.iter().map(|i| i.to_string()).collect(),
            _tmp: tmp,
        }
    }

    /// A directory next to the data dir, removed with it.
    pub fn scratch(&self) -> &Path {
        self._tmp.path()
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.engine.cleanup(&self.data, &self.apps, &self.images);
    }
}

/// The Dockerfile of the app under test: the example's, with the binary
/// next to it.
pub const HELLO_DOCKERFILE: &str =
    "FROM scratch\nCOPY hello /hello\nENV HELLO_HOST=0.0.0.0\nCMD [\"/hello\"]\n";

/// A containerized app directory: Dockerfile, static hello, wharf.toml.
pub struct DockerApp {
    pub dir: tempfile::TempDir,
    pub name: String,
}

impl DockerApp {
    /// `extra` is TOML appended after `[processes.web]` (more processes,
    /// `[secrets]`, `[accessories.*]`, …); `top` goes before it.
    pub fn new(name: &str, top: &str, extra: &str) -> DockerApp {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(static_hello(), dir.path().join("hello")).unwrap();
        std::fs::write(dir.path().join("Dockerfile"), HELLO_DOCKERFILE).unwrap();
        let toml = format!(
            r#"name = "{name}"
runtime = "docker"
{top}

[processes.web]
instances = 2
http = {{ path = "/" }}
health = {{ path = "/up", interval = "200ms", timeout = "1s", threshold = 2 }}
stop_timeout = "5s"
memory = "64MiB"

[deploy]
health_timeout = "20s"
drain_timeout = "5s"
retain = 3

{extra}
"#
        );
        std::fs::write(dir.path().join("wharf.toml"), toml).unwrap();
        DockerApp {
            dir,
            name: name.to_owned(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn path_str(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }
}

/// An app whose `/kv/*` goes to the accessory `kv`: a store built from the
/// app's own directory, with a Dockerfile of its own, keeping its data in
/// the named volume `data`. With `up_needs_kv`, the app's `/up` passes only
/// while the store's does (as a real app's health check needs its database).
pub fn kv_app(name: &str, up_needs_kv: bool) -> DockerApp {
    let needs = if up_needs_kv {
        "HELLO_UP_NEEDS_KV = \"1\"\n"
    } else {
        ""
    };
    let accessory = format!(
        r#"[env]
HELLO_KV_URL = "http://kv:7000"
{needs}
[accessories.kv]
build = {{ dockerfile = "kv.Dockerfile" }}
volumes = ["data:/data"]
health = {{ command = "/hello probe http://127.0.0.1:7000/up", interval = "500ms", retries = 20 }}
"#
    );
    let app = DockerApp::new(name, "", &accessory);
    std::fs::write(
        app.path().join("kv.Dockerfile"),
        "FROM scratch\nCOPY hello /hello\nENV HELLO_HOST=0.0.0.0 PORT=7000\nCMD [\"/hello\", \"kv\", \"/data\"]\n",
    )
    .unwrap();
    app
}

/// `wharf --data DATA ARGS` (a client command), to completion.
pub fn cli(data: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(super::wharf_bin())
        .arg("--data")
        .arg(data)
        .args(args)
        .env("HOME", data.parent().unwrap())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// `wharf up` of `app` on `data` in the foreground, killed if dropped.
pub struct Up {
    child: std::process::Child,
    /// The proxy, once the app is live.
    pub proxy: std::net::SocketAddr,
    /// How long it took to say the app is live.
    pub took: std::time::Duration,
    /// Every line it wrote to stderr / stdout, once it has exited.
    stderr: Option<std::thread::JoinHandle<String>>,
    stdout: Option<std::thread::JoinHandle<String>>,
}

impl Up {
    pub fn start(app: &DockerApp, data: &Path) -> Up {
        Up::start_with(app, data, &[])
    }

    /// With extra arguments to `wharf up` (e.g. `--deploy`).
    pub fn start_with(app: &DockerApp, data: &Path, extra: &[&str]) -> Up {
        use std::io::BufRead;
        let started = std::time::Instant::now();
        let mut child = std::process::Command::new(super::wharf_bin())
            .arg("--data")
            .arg(data)
            .args(["up", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .args(extra)
            .arg(app.path())
            .env("HOME", data.parent().unwrap())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        let live = format!("{} is live at http://", app.name);
        let stderr = std::thread::spawn(move || {
            let mut all = String::new();
            for line in stderr.lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix(&live) {
                    let _ = tx.send(addr.trim_end_matches('/').to_owned());
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        let stdout = std::thread::spawn(move || {
            let mut all = String::new();
            for line in stdout.lines().map_while(Result::ok) {
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        let mut up = Up {
            child,
            proxy: ([127, 0, 0, 1], 0).into(),
            took: std::time::Duration::ZERO,
            stderr: Some(stderr),
            stdout: Some(stdout),
        };
        match rx.recv_timeout(std::time::Duration::from_secs(180)) {
            Ok(addr) => {
                up.proxy = addr.parse().unwrap();
                up.took = started.elapsed();
            }
            Err(_) => {
                let _ = up.child.kill();
                let _ = up.child.wait();
                panic!("wharf up never said the app is live:\n{}", up.stderr_text());
            }
        }
        up
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Ctrl-C, then (stderr, stdout); it must exit 0.
    pub fn interrupt(mut self) -> (String, String) {
        super::signal(self.child.id(), nix::sys::signal::Signal::SIGINT);
        let status = self.child.wait().unwrap();
        let stderr = self.stderr_text();
        let stdout = self.stdout_text();
        assert!(status.success(), "{status}:\n{stderr}");
        (stderr, stdout)
    }

    /// `kill -9`: nothing is stopped (containers and accessories stay as
    /// they are); what it wrote to stderr.
    pub fn kill9(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr_text()
    }

    /// What it wrote to stderr (waits for the pipe to close).
    pub fn stderr_text(&mut self) -> String {
        self.stderr
            .take()
            .map(|t| t.join().unwrap())
            .unwrap_or_default()
    }

    fn stdout_text(&mut self) -> String {
        self.stdout
            .take()
            .map(|t| t.join().unwrap())
            .unwrap_or_default()
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `PUT path` with `body` through the proxy: the status.
pub fn put(addr: std::net::SocketAddr, path: &str, body: &str) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    write!(
        s,
        "PUT {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    String::from_utf8_lossy(&buf)
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// `GET path` through the proxy: (status, body).
pub fn read(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let (status, _, body) = super::get_full(addr, path);
    (status, body)
}
