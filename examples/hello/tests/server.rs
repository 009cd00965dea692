//! Starts the real `hello` binary on a free port and talks HTTP/1.1 to it:
//! the web app, the `kv` store (alone and behind the web app) and `probe`.

#![allow(clippy::unwrap_used)] // Test helpers: a failed step is a failed test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

struct Server {
    child: Child,
    port: u16,
    stdout: mpsc::Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(env: &[(&str, &str)]) -> Server {
    spawn(&[], env)
}

/// `hello kv DIR` on a free port.
fn start_kv(dir: &Path) -> Server {
    spawn(&["kv".as_ref(), dir.as_os_str()], &[])
}

/// `hello ARGS` on a free port, once it says it is listening.
fn spawn(args: &[&std::ffi::OsStr], env: &[(&str, &str)]) -> Server {
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hello"));
    cmd.args(args)
        .env_clear()
        .env("PORT", port.to_string())
        .env("WHARF_RELEASE", "7")
        .env("WHARF_INSTANCE", "hello-r7-web-0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("hello did not start");
    assert!(first.contains("listening"), "{first}");
    Server {
        child,
        port,
        stdout: rx,
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn get(port: u16, path: &str) -> Reply {
    request(port, "GET", path, None)
}

fn put(port: u16, path: &str, body: &str) -> Reply {
    request(port, "PUT", path, Some(body))
}

fn request(port: u16, method: &str, path: &str, body: Option<&str>) -> Reply {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let body_head = match body {
        Some(body) => format!("Content-Length: {}\r\n", body.len()),
        None => String::new(),
    };
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{body_head}\r\n{}",
        body.unwrap_or_default()
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("no header end");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

#[test]
fn pages_and_health() {
    let server = start(&[("HELLO_MESSAGE", "Hi <there>")]);
    let up = get(server.port, "/up");
    assert_eq!(up.status, 200);
    assert_eq!(up.body, "ok");
    assert_eq!(up.header("x-hello-release"), Some("7"));

    let index = get(server.port, "/");
    assert_eq!(index.status, 200);
    assert!(
        index
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        index.body.contains("hello from release 7"),
        "{}",
        index.body
    );
    assert!(index.body.contains("hello-r7-web-0"));
    assert!(index.body.contains("Hi &lt;there&gt;"));

    let other = get(server.port, "/some/path?x=1");
    assert_eq!(other.status, 200);
    assert_eq!(
        other.body,
        "hello release=7 instance=hello-r7-web-0 path=/some/path\n"
    );
    assert_eq!(other.header("x-hello-release"), Some("7"));
}

#[test]
fn up_status_is_settable() {
    let server = start(&[("HELLO_UP_STATUS", "503")]);
    let up = get(server.port, "/up");
    assert_eq!(up.status, 503);
    assert_eq!(up.header("x-hello-release"), Some("7"));
    assert_eq!(get(server.port, "/x").status, 200);
}

#[test]
fn failure_rate_fails_exactly_that_fraction() {
    let server = start(&[("HELLO_FAILURE_RATE", "0.2")]);
    let mut failures = 0;
    for i in 0..100 {
        // Health checks do not count.
        if i % 10 == 0 {
            assert_eq!(get(server.port, "/up").status, 200);
        }
        let reply = get(server.port, "/x");
        assert_eq!(reply.header("x-hello-release"), Some("7"));
        match reply.status {
            200 => {}
            500 => failures += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(failures, 20);
}

#[test]
fn delay_is_added() {
    let server = start(&[("HELLO_DELAY", "300ms")]);
    let started = std::time::Instant::now();
    assert_eq!(get(server.port, "/x").status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let started = std::time::Instant::now();
    assert_eq!(get(server.port, "/up").status, 200);
    assert!(started.elapsed() < Duration::from_millis(300));
}

#[test]
fn sigterm_finishes_in_flight_requests() {
    let mut server = start(&[("HELLO_DELAY", "1s")]);
    let port = server.port;
    let in_flight = std::thread::spawn(move || get(port, "/slow"));
    std::thread::sleep(Duration::from_millis(300));
    kill(Pid::from_raw(server.child.id() as i32), Signal::SIGTERM).unwrap();
    let reply = in_flight.join().unwrap();
    assert_eq!(reply.status, 200);
    assert!(reply.body.contains("path=/slow"));
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let last = server.stdout.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(last.contains("stopped"), "{last}");
    // Not listening any more.
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn bad_settings_exit_with_a_message() {
    let output = Command::new(env!("CARGO_BIN_EXE_hello"))
        .env_clear()
        .env("HELLO_FAILURE_RATE", "2")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("HELLO_FAILURE_RATE"));
}

/// Stops a server with SIGTERM and checks it exits cleanly.
fn stop(mut server: Server) {
    kill(Pid::from_raw(server.child.id() as i32), Signal::SIGTERM).unwrap();
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn kv_put_get_missing_and_bad_keys() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("not/yet/there");
    let kv = start_kv(&data);

    let up = get(kv.port, "/up");
    assert_eq!(up.status, 200);
    assert_eq!(up.body, "ok");

    assert_eq!(get(kv.port, "/kv/greeting").status, 404);
    let stored = put(kv.port, "/kv/greeting", "hi there");
    assert_eq!(stored.status, 204, "{}", stored.body);
    let line = kv.stdout.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(line, "hello kv: wrote greeting (8 bytes)");
    let read = get(kv.port, "/kv/greeting");
    assert_eq!(read.status, 200);
    assert_eq!(read.body, "hi there");
    // Overwriting replaces the whole value.
    assert_eq!(put(kv.port, "/kv/greeting", "bye").status, 204);
    assert_eq!(get(kv.port, "/kv/greeting").body, "bye");
    // An empty value is a value.
    assert_eq!(put(kv.port, "/kv/empty", "").status, 204);
    let empty = get(kv.port, "/kv/empty");
    assert_eq!((empty.status, empty.body.as_str()), (200, ""));
    assert_eq!(put(kv.port, "/kv/A-z_0.9", "x").status, 204);

    let long = format!("/kv/{}", "k".repeat(129));
    for bad in [
        "/kv/",
        "/kv/.",
        "/kv/..",
        "/kv/../escape",
        "/kv/..%2Fescape",
        "/kv/a/b",
        "/kv/a%20b",
        "/kv/a~1",
        long.as_str(),
    ] {
        assert_eq!(put(kv.port, bad, "x").status, 400, "PUT {bad}");
        assert_eq!(get(kv.port, bad).status, 400, "GET {bad}");
    }
    assert_eq!(request(kv.port, "DELETE", "/kv/greeting", None).status, 405);
    assert_eq!(get(kv.port, "/other").status, 404);

    // One file per key, nothing else (no temporary files left), nothing
    // outside the data directory.
    let mut files: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, ["A-z_0.9", "empty", "greeting"]);
    assert!(!dir.path().join("not/yet/escape").exists());
    assert_eq!(
        std::fs::read_to_string(data.join("greeting")).unwrap(),
        "bye"
    );
}

#[test]
fn kv_data_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let kv = start_kv(dir.path());
    assert_eq!(put(kv.port, "/kv/counter", "41").status, 204);
    stop(kv);

    // A temporary file from a killed store is cleaned up at start.
    let leftover = dir.path().join(".counter~1-0.tmp");
    std::fs::write(&leftover, "half").unwrap();
    let kv = start_kv(dir.path());
    let read = get(kv.port, "/kv/counter");
    assert_eq!((read.status, read.body.as_str()), (200, "41"));
    assert!(!leftover.exists());
}

#[test]
fn kv_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut kv = start_kv(dir.path());
    assert_eq!(put(kv.port, "/kv/a", "1").status, 204);
    kill(Pid::from_raw(kv.child.id() as i32), Signal::SIGTERM).unwrap();
    assert!(kv.child.wait().unwrap().success());
    let lines: Vec<String> = kv.stdout.iter().collect();
    assert_eq!(
        lines,
        [
            "hello kv: wrote a (1 bytes)",
            "hello kv: stopped gracefully after 1 writes"
        ]
    );
}

#[test]
fn kv_listens_on_7000_by_default_and_needs_a_dir() {
    let no_dir = Command::new(env!("CARGO_BIN_EXE_hello"))
        .env_clear()
        .arg("kv")
        .output()
        .unwrap();
    assert_eq!(no_dir.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_dir.stderr).contains("data directory"));

    // Only when 7000 is free here: the check must not fail because of
    // something else running on this machine.
    if TcpListener::bind("127.0.0.1:7000").is_err() {
        eprintln!("port 7000 is taken; not checking the default port");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hello"))
        .env_clear()
        .arg("kv")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        first.starts_with("hello kv: listening on http://127.0.0.1:7000 "),
        "{first}"
    );
}

#[test]
fn web_forwards_kv_to_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let kv = start_kv(dir.path());
    let url = format!("http://127.0.0.1:{}/", kv.port);
    let web = start(&[("HELLO_KV_URL", &url)]);

    let missing = get(web.port, "/kv/visits");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body, "no such key\n");
    assert_eq!(missing.header("x-hello-release"), Some("7"));

    assert_eq!(put(web.port, "/kv/visits", "3").status, 204);
    let read = get(web.port, "/kv/visits");
    assert_eq!((read.status, read.body.as_str()), (200, "3"));
    assert_eq!(
        read.header("content-type"),
        Some("application/octet-stream")
    );
    // It really is in the store.
    assert_eq!(get(kv.port, "/kv/visits").body, "3");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("visits")).unwrap(),
        "3"
    );

    // The store judges keys, also when they come through the web app.
    assert_eq!(get(web.port, "/kv/..").status, 400);
    assert_eq!(put(web.port, "/kv/..%2Fx", "x").status, 400);
    // Other methods and paths are the web app's own.
    let delete = request(web.port, "DELETE", "/kv/visits", None);
    assert_eq!(delete.status, 200);
    assert!(
        delete.body.starts_with("hello release=7"),
        "{}",
        delete.body
    );
    assert_eq!(get(web.port, "/kvx").status, 200);
}

#[test]
fn web_answers_502_when_the_store_is_down() {
    let port = free_port();
    let web = start(&[("HELLO_KV_URL", &format!("http://127.0.0.1:{port}"))]);
    let reply = get(web.port, "/kv/visits");
    assert_eq!(reply.status, 502);
    assert!(
        reply.body.starts_with(&format!(
            "kv store at http://127.0.0.1:{port} unreachable: "
        )),
        "{}",
        reply.body
    );
    assert_eq!(reply.body.lines().count(), 1, "{}", reply.body);
    assert_eq!(put(web.port, "/kv/visits", "1").status, 502);
}

/// With `HELLO_UP_NEEDS_KV=1`, `/up` follows the store's own health: an
/// app whose database is down is not healthy.
#[test]
fn up_can_depend_on_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let kv = start_kv(dir.path());
    let url = format!("http://127.0.0.1:{}", kv.port);
    let web = start(&[("HELLO_KV_URL", &url), ("HELLO_UP_NEEDS_KV", "1")]);
    assert_eq!(get(web.port, "/up").status, 200);
    stop(kv);
    let reply = get(web.port, "/up");
    assert_eq!(reply.status, 500);
    assert!(
        reply
            .body
            .starts_with(&format!("kv store at {url} unreachable: ")),
        "{}",
        reply.body
    );
    // Without the knob the store does not matter to /up.
    let plain = start(&[("HELLO_KV_URL", &url)]);
    assert_eq!(get(plain.port, "/up").status, 200);
}

/// `GET /ws`: the greeting names the release and instance, then text and
/// binary messages come back as they went.
#[test]
fn websocket_greets_and_echoes() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let web = start(&[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let url = format!("ws://127.0.0.1:{}/ws", web.port);
        let (mut ws, resp) = tokio_tungstenite::connect_async(url).await.unwrap();
        assert_eq!(resp.headers()["x-hello-release"], "7");
        let greeting = ws.next().await.unwrap().unwrap();
        assert_eq!(
            greeting,
            Message::text("hello release=7 instance=hello-r7-web-0")
        );
        ws.send(Message::text("ping?")).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("ping?"));
        let blob = vec![1u8, 2, 3, 255];
        ws.send(Message::binary(blob.clone())).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(blob));
        ws.close(None).await.unwrap();
    });
}

#[test]
fn web_without_kv_url_serves_kv_paths_itself() {
    let web = start(&[]);
    let reply = get(web.port, "/kv/visits");
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body,
        "hello release=7 instance=hello-r7-web-0 path=/kv/visits\n"
    );
    assert_eq!(put(web.port, "/kv/visits", "1").status, 200);
}

#[test]
fn web_with_kv_dir_keeps_values_in_its_own_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("storage");
    let web = start(&[("HELLO_KV_DIR", data.to_str().unwrap())]);
    assert_eq!(get(web.port, "/kv/visits").status, 404);
    assert_eq!(put(web.port, "/kv/visits", "41").status, 204);
    assert_eq!(get(web.port, "/kv/visits").body, "41");
    assert_eq!(std::fs::read_to_string(data.join("visits")).unwrap(), "41");
    assert_eq!(get(web.port, "/kv/..").status, 400);
}

#[test]
fn static_files_are_served_and_linked_from_the_page() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app-3f2a.css"), "body { color: teal }").unwrap();
    std::fs::write(dir.path().join("app-3f2a.js"), "1").unwrap();
    let web = start(&[("HELLO_STATIC_DIR", dir.path().to_str().unwrap())]);
    let page = get(web.port, "/");
    assert!(
        page.body
            .contains(r#"<link rel="stylesheet" href="/static/app-3f2a.css">"#),
        "{}",
        page.body
    );
    assert!(!page.body.contains("app-3f2a.js"), "{}", page.body);
    let css = get(web.port, "/static/app-3f2a.css");
    assert_eq!(
        (css.status, css.body.as_str()),
        (200, "body { color: teal }")
    );
    assert_eq!(css.header("content-type"), Some("text/css"));
    assert_eq!(get(web.port, "/static/missing.css").status, 404);
    assert_eq!(get(web.port, "/static/..%2fetc").status, 404);
}

#[test]
fn bad_kv_url_is_a_bad_setting() {
    for bad in ["https://kv:7000", "kv:7000", "http://kv:7000/?x=1"] {
        let output = Command::new(env!("CARGO_BIN_EXE_hello"))
            .env_clear()
            .env("HELLO_KV_URL", bad)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{bad}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("HELLO_KV_URL"),
            "{bad}"
        );
    }
}

#[test]
fn has_env_never_shows_values() {
    let web = start(&[("HELLO_TOKEN", "s3cret"), ("HELLO_EMPTY", "")]);
    let yes = get(web.port, "/has-env/HELLO_TOKEN");
    assert_eq!((yes.status, yes.body.as_str()), (200, "yes"));
    assert_eq!(yes.header("x-hello-release"), Some("7"));
    let empty = get(web.port, "/has-env/HELLO_EMPTY");
    assert_eq!((empty.status, empty.body.as_str()), (404, "no"));
    let unset = get(web.port, "/has-env/HELLO_NOT_SET");
    assert_eq!((unset.status, unset.body.as_str()), (404, "no"));
    for bad in ["/has-env/", "/has-env/1X", "/has-env/A=B", "/has-env/A%00"] {
        assert_eq!(get(web.port, bad).status, 400, "{bad}");
    }
    for reply in [yes, empty, unset] {
        assert!(!reply.body.contains("s3cret"));
    }
}

fn probe(url: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hello"))
        .env_clear()
        .args(["probe", url])
        .output()
        .unwrap()
}

#[test]
fn probe_exit_codes() {
    let healthy = start(&[]);
    let ok = probe(&format!("http://127.0.0.1:{}/up", healthy.port));
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");

    let sick = start(&[("HELLO_UP_STATUS", "503")]);
    let failing = probe(&format!("http://127.0.0.1:{}/up", sick.port));
    assert_eq!(failing.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&failing.stderr);
    assert!(stderr.contains("503"), "{stderr}");

    let closed = probe(&format!("http://127.0.0.1:{}/up", free_port()));
    assert_eq!(closed.status.code(), Some(1));
    assert!(!closed.stderr.is_empty());

    // Bad usage is 1 too (2 is reserved in Docker health checks).
    for args in [
        &["probe"][..],
        &["probe", "https://127.0.0.1/up"],
        &["probe", "not a url"],
        &["probe", "http://a", "http://b"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_hello"))
            .env_clear()
            .args(args)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert!(!output.stderr.is_empty(), "{args:?}");
    }
}

#[test]
fn probe_gives_up_after_two_seconds() {
    // Accepted by the kernel, never answered.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let started = std::time::Instant::now();
    let output = probe(&format!("http://127.0.0.1:{port}/up"));
    let took = started.elapsed();
    assert_eq!(output.status.code(), Some(1));
    assert!(took >= Duration::from_secs(2), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no answer within 2s"), "{stderr}");
}

#[test]
fn unknown_commands_are_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_hello"))
        .env_clear()
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("usage: hello"));
}
