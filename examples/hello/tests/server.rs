//! Starts the real `hello` binary on a free port and talks HTTP/1.1 to it.

#![allow(clippy::unwrap_used)] // Test helpers: a failed step is a failed test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
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
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hello"));
    cmd.env_clear()
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
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
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
