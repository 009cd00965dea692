//! The end-to-end test language: an [`App`] directory, a [`Server`] (the
//! real `wharf server` binary as a child process), the `wharf` CLI run
//! against it, a [`Load`] that keeps requesting through the proxy, and
//! `/proc` scans for the processes a data dir owns.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

pub mod docker;
pub mod forge;
pub mod hooks;
pub mod load;
pub mod upstream;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

#[allow(unused_imports)]
pub use load::Load;

/// The CLI as a user on another machine runs it: in `cwd`, with `home` as
/// its HOME (where remotes and pins are kept), no WHARF_DATA, no server or
/// token from this environment; `env` on top.
pub fn remote_cli(cwd: &Path, home: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(wharf_bin());
    cmd.args(args)
        .current_dir(cwd)
        .env("HOME", home)
        .env_remove("WHARF_DATA")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("WHARF_SERVER")
        .env_remove("WHARF_TOKEN")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Retries `cond` until it holds or `timeout` passes (linkerd2-proxy style).
#[macro_export]
macro_rules! assert_eventually {
    ($cond:expr, $timeout:expr, $($msg:tt)+) => {{
        let deadline = std::time::Instant::now() + $timeout;
        loop {
            if $cond {
                break;
            }
            if std::time::Instant::now() > deadline {
                panic!($($msg)+);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }};
}

/// The example app's binary, built once per test run.
pub fn hello_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        escargot::CargoBuild::new()
            .package("hello")
            .bin("hello")
            .run()
            .expect("building examples/hello failed")
            .path()
            .to_path_buf()
    })
}

pub fn wharf_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_wharf"))
}

/// An app directory with a `wharf.toml` running the hello example.
pub struct App {
    pub dir: tempfile::TempDir,
    pub name: String,
}

pub struct AppBuilder {
    name: String,
    instances: u32,
    release_command: Option<String>,
    health_timeout: String,
    drain_timeout: String,
    deploy_extra: String,
}

impl App {
    pub fn builder(name: &str) -> AppBuilder {
        AppBuilder {
            name: name.into(),
            instances: 2,
            release_command: None,
            health_timeout: "15s".into(),
            drain_timeout: "5s".into(),
            deploy_extra: String::new(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write_config(&self, toml: &str) {
        std::fs::write(self.dir.path().join("wharf.toml"), toml).unwrap();
    }
}

impl AppBuilder {
    pub fn instances(mut self, n: u32) -> Self {
        self.instances = n;
        self
    }
    pub fn release_command(mut self, cmd: &str) -> Self {
        self.release_command = Some(cmd.into());
        self
    }
    /// TOML appended to the `[deploy]` table (may open `[deploy.analysis]`).
    pub fn deploy(mut self, toml: &str) -> Self {
        self.deploy_extra = toml.into();
        self
    }
    pub fn health_timeout(mut self, t: &str) -> Self {
        self.health_timeout = t.into();
        self
    }
    pub fn build(self) -> App {
        let dir = tempfile::tempdir().unwrap();
        let release = self
            .release_command
            .map(|c| format!("release_command = {c:?}\n"))
            .unwrap_or_default();
        let toml = format!(
            r#"name = "{name}"
{release}
[processes.web]
command = "{bin}"
instances = {instances}
http = {{ path = "/" }}
health = {{ path = "/up", interval = "200ms", timeout = "1s", threshold = 2 }}
stop_timeout = "5s"

[deploy]
health_timeout = "{ht}"
drain_timeout = "{dt}"
retain = 3
{extra}
"#,
            name = self.name,
            bin = hello_bin().display(),
            instances = self.instances,
            ht = self.health_timeout,
            dt = self.drain_timeout,
            extra = self.deploy_extra,
        );
        let app = App {
            dir,
            name: self.name,
        };
        app.write_config(&toml);
        app
    }
}

/// A `wharf server` child process on a data dir of its own.
pub struct Server {
    child: Option<Child>,
    pub data: PathBuf,
    pub proxy: SocketAddr,
    /// The HTTPS listener, when started with `--https-listen`.
    pub https: Option<SocketAddr>,
    pub admin: SocketAddr,
    /// The https API, when started with `--api`, and its fingerprint.
    pub api: Option<SocketAddr>,
    pub api_fingerprint: Option<String>,
    home: PathBuf,
    log: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts a server on a fresh data dir.
    pub fn start() -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = Server::start_on(&tmp.path().join("data"), &[]);
        s._tmp = Some(tmp);
        s
    }

    /// Starts a server on `data` (which may hold an earlier server's state)
    /// and waits until its recovery (restores, leftovers) has ended.
    pub fn start_on(data: &Path, env: &[(&str, &str)]) -> Server {
        let server = Server::start_answering(data, env);
        server.wait_recovered();
        server
    }

    /// Waits until the server's background recovery has ended.
    pub fn wait_recovered(&self) {
        self.wait_for_log("\"message\":\"recovered\"", Duration::from_secs(120));
    }

    /// Starts a server on `data` and returns as soon as it answers (its
    /// restores may still run).
    pub fn start_answering(data: &Path, env: &[(&str, &str)]) -> Server {
        Server::start_with(data, env, &[])
    }

    /// Starts a server on `data` with extra `wharf server` arguments (an
    /// argument given here replaces the default `--listen`/`--admin`), and
    /// waits until its recovery ended.
    pub fn start_args(data: &Path, env: &[(&str, &str)], args: &[&str]) -> Server {
        let server = Server::start_with(data, env, args);
        server.wait_recovered();
        server
    }

    fn start_with(data: &Path, env: &[(&str, &str)], args: &[&str]) -> Server {
        std::fs::create_dir_all(data).unwrap();
        let data = data.canonicalize().unwrap();
        let home = data.parent().unwrap().join("home");
        std::fs::create_dir_all(&home).unwrap();
        static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = data.parent().unwrap().join(format!("server-{n}.log"));
        let _ = std::fs::remove_file(data.join("server.json"));
        let mut cmd = Command::new(wharf_bin());
        cmd.arg("server");
        for flag in ["--listen", "--admin"] {
            if !args.contains(&flag) {
                cmd.args([flag, "127.0.0.1:0"]);
            }
        }
        cmd.args(args)
            .env("WHARF_DATA", &data)
            .env("HOME", &home)
            .env_remove("WHARF_FAILPOINT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("could not start wharf server");
        let pid = child.id();
        let mut server = Server {
            child: Some(child),
            data: data.clone(),
            proxy: SocketAddr::from(([127, 0, 0, 1], 0)),
            https: None,
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            api: None,
            api_fingerprint: None,
            home,
            log,
            _tmp: None,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(bytes) = std::fs::read(data.join("server.json"))
                && let Ok(info) = serde_json::from_slice::<serde_json::Value>(&bytes)
                && info["pid"].as_u64() == Some(pid as u64)
            {
                server.proxy = info["proxy"].as_str().unwrap().parse().unwrap();
                server.https = info["https"].as_str().map(|a| a.parse().unwrap());
                server.admin = info["admin"].as_str().unwrap().parse().unwrap();
                server.api = info["api"].as_str().map(|a| a.parse().unwrap());
                server.api_fingerprint = info["api_fingerprint"].as_str().map(str::to_owned);
                return server;
            }
            if let Some(status) = server.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "wharf server exited with {status} while starting:\n{}",
                    server.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "wharf server did not become ready:\n{}",
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A `wharf` CLI command against this server.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(wharf_bin());
        cmd.args(args)
            .env("WHARF_DATA", &self.data)
            .env("HOME", &self.home)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs a CLI command to completion.
    pub fn wharf(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs a CLI command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.wharf(args);
        assert!(
            out.status.success(),
            "`wharf {}` failed ({}):\n{}\n--- server log ---\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr),
            tail(&self.log_text(), 40)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Deploys `app` and returns the new live release.
    pub fn deploy(&self, app: &App, extra: &[&str]) -> i64 {
        self.deploy_dir(app.path(), extra)
    }

    /// Deploys the app in `dir` and returns the new live release.
    pub fn deploy_dir(&self, dir: &Path, extra: &[&str]) -> i64 {
        let mut args = vec!["deploy", dir.to_str().unwrap(), "--json"];
        args.extend_from_slice(extra);
        let report: serde_json::Value = serde_json::from_str(&self.ok(&args)).unwrap();
        report["release"].as_i64().unwrap()
    }

    pub fn rollback(&self, to: Option<i64>) -> i64 {
        let n = to.map(|n| n.to_string());
        let mut args = vec!["rollback", "--json"];
        if let Some(n) = &n {
            args.push(n);
        }
        let report: serde_json::Value = serde_json::from_str(&self.ok(&args)).unwrap();
        report["release"].as_i64().unwrap()
    }

    pub fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["status", "--json"])).unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait for a graceful exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(60);
            while c.try_wait().unwrap().is_none() {
                assert!(
                    Instant::now() < deadline,
                    "wharf server did not stop on SIGTERM"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            let status = c.wait().unwrap();
            assert!(
                status.success(),
                "wharf server exited with {status}:\n{}",
                tail(&self.log_text(), 40)
            );
        }
    }

    /// Waits until the server's log contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        assert_eventually!(
            self.log_text().contains(needle),
            timeout,
            "server log never said {needle:?}:\n{}",
            tail(&self.log_text(), 40)
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        for (pid, _) in owned_processes(&self.data) {
            signal(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

pub fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
}

/// Processes on this machine that carry `WHARF_DATA_DIR=<data>`: the
/// instances (and tasks) a server on `data` started. (pid, instance id)
pub fn owned_processes(data: &Path) -> Vec<(u32, String)> {
    let marker = format!("WHARF_DATA_DIR={}", data.display());
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(env) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        // A zombie has an empty environ; only live processes count.
        let vars: Vec<String> = env
            .split(|b| *b == 0)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        if vars.contains(&marker) {
            let instance = vars
                .iter()
                .find_map(|v| v.strip_prefix("WHARF_INSTANCE="))
                .unwrap_or("")
                .to_owned();
            out.push((pid, instance));
        }
    }
    out.sort();
    out
}

/// The distinct instances among [`owned_processes`] (an instance may be a
/// shell and its child).
pub fn owned_instances(data: &Path) -> std::collections::BTreeSet<String> {
    owned_processes(data)
        .into_iter()
        .map(|(_, id)| id)
        .collect()
}

/// One GET on a fresh connection: (status, X-Hello-Release).
pub fn get(addr: SocketAddr, path: &str) -> (u16, Option<i64>) {
    let (status, headers, _) = get_full(addr, path);
    let release = headers
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-hello-release:")
                .map(|v| v.trim().to_owned())
        })
        .and_then(|v| v.parse().ok());
    (status, release)
}

/// One GET on a fresh connection: (status, head, body).
pub fn get_full(addr: SocketAddr, path: &str) -> (u16, String, String) {
    get_with(addr, path, &[])
}

/// One GET with extra headers on a fresh connection: (status, head, body).
pub fn get_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    get_from(addr, "localhost", path, headers)
}

/// One GET for `host` with extra headers on a fresh connection: (status,
/// head, body).
pub fn get_from(
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

/// The value of a response header in a raw head, any case.
pub fn header(head: &str, name: &str) -> Option<String> {
    let prefix = format!("{}:", name.to_ascii_lowercase());
    head.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .starts_with(&prefix)
            .then(|| l[prefix.len()..].trim().to_owned())
    })
}

/// Fresh-connection requests right after a switch must all be answered by
/// the new release.
pub fn assert_serves(server: &Server, release: i64) {
    for _ in 0..20 {
        let (status, got) = get(server.proxy, "/check");
        assert_eq!(
            (status, got),
            (200, Some(release)),
            "expected release {release} to answer every new request"
        );
    }
}

/// The zero-downtime scenario of M1, for any runtime: under load (4
/// keep-alive and 2 fresh-connection clients), 20 deploys of the app in
/// `dir` with a rollback after every 4th; every switch is checked with
/// [`assert_serves`]. Returns the load's report and the live release.
pub fn twenty_deploys_and_five_rollbacks(server: &Server, dir: &Path) -> (load::Report, i64) {
    let load = Load::start(server.proxy, 4, 2);
    let (mut deploys, mut rollbacks, mut live) = (0, 0, live_release(server));
    while deploys < 20 {
        let before = load.ok();
        let msg = format!("HELLO_MESSAGE=deploy {deploys}");
        live = server.deploy_dir(dir, &["--env", &msg]);
        deploys += 1;
        assert_serves(server, live);
        if deploys % 4 == 0 {
            let previous = live - 1;
            live = server.rollback(None);
            assert_eq!(
                live, previous,
                "rollback goes to the release before the live one"
            );
            rollbacks += 1;
            assert_serves(server, live);
        }
        // The load keeps flowing through every switch.
        assert_eventually!(
            load.ok() > before,
            Duration::from_secs(10),
            "no request succeeded during deploy {deploys}"
        );
    }
    assert_eq!((deploys, rollbacks), (20, 5));
    (load.finish(), live)
}

/// The release the (only) app serves, per `wharf status`.
pub fn live_release(server: &Server) -> i64 {
    server.status()["apps"][0]["release"].as_i64().unwrap()
}

pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
