//! What the benchmarks in `examples/` share (included with
//! `#[path = "common/mod.rs"] mod common;`): a `wharf server` child that
//! gets SIGTERM when dropped, waiting for the server's `server.json`, and
//! an open-loop constant HTTP load that records every request it sends.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

/// How long one request (connecting included) may take before it counts
/// as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One request: when it was sent (since the load's start), and what went
/// wrong if it failed (a connect error, a reset, a timeout or a non-2xx).
#[derive(Debug, Clone)]
pub struct Sample {
    pub sent: Duration,
    pub error: Option<String>,
}

impl Sample {
    pub fn failed(&self) -> bool {
        self.error.is_some()
    }
}

/// A `wharf server` child, stopped with its instances when dropped,
/// however the benchmark ends.
#[derive(Debug)]
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM: the server drains and stops its instances.
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.0.wait();
    }
}

/// Starts `wharf server` on `data` with ephemeral ports and no access log
/// (`HOME` = `home`, its log in `home/server.log`); returns it and its
/// proxy address once it is ready.
pub fn start_server(wharf: &Path, data: &Path, home: &Path) -> (Server, SocketAddr) {
    let log = std::fs::File::create(home.join("server.log")).expect("creating server.log");
    let child = Command::new(wharf)
        .args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--no-access-log",
        ])
        .env("WHARF_DATA", data)
        .env("HOME", home)
        .stderr(log)
        .spawn()
        .expect("starting wharf server");
    let server = Server(child);
    let proxy = wait_for_server(data);
    (server, proxy)
}

/// A `wharf` CLI command against the server on `data`.
pub fn cli(wharf: &Path, data: &Path, home: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(wharf);
    c.args(args).env("WHARF_DATA", data).env("HOME", home);
    c
}

/// The proxy address of the server on `data`, once it has written its
/// `server.json` (panics after 30 s).
pub fn wait_for_server(data: &Path) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(b) = std::fs::read(data.join("server.json"))
            && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&b)
        {
            return v["proxy"]
                .as_str()
                .expect("server.json has a proxy address")
                .parse()
                .expect("the proxy address parses");
        }
        assert!(Instant::now() < deadline, "wharf server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `rate` requests a second at fixed times, whatever the answers take
/// (an open loop: a slow server does not slow the load down), over a pool of
/// keep-alive connections, until `stop`; each request is pushed to
/// `samples`.
pub async fn open_loop(
    addr: SocketAddr,
    rate: u32,
    start: Instant,
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
) {
    const CONNECTIONS: usize = 16;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Duration>();
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let mut workers = Vec::new();
    for _ in 0..CONNECTIONS {
        let (rx, samples) = (rx.clone(), samples.clone());
        workers.push(tokio::spawn(async move {
            let mut sender: Option<hyper::client::conn::http1::SendRequest<Empty<Bytes>>> = None;
            loop {
                let Some(sent) = rx.lock().await.recv().await else {
                    return;
                };
                let error = request(addr, &mut sender).await.err();
                samples
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(Sample { sent, error });
            }
        }));
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let _ = tx.send(start.elapsed());
    }
    drop(tx);
    for w in workers {
        let _ = w.await;
    }
}

/// One `GET /bench` on `sender`'s connection, opening a new one when there
/// is none or it was closed; `Err` says what went wrong.
pub async fn request(
    addr: SocketAddr,
    sender: &mut Option<hyper::client::conn::http1::SendRequest<Empty<Bytes>>>,
) -> Result<(), String> {
    if sender.as_mut().is_none_or(|s| s.is_closed()) {
        let connect = async {
            let stream = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| format!("handshake: {}", describe(&e)))
        };
        let (s, conn) = tokio::time::timeout(REQUEST_TIMEOUT, connect)
            .await
            .map_err(|_| "connect: timeout".to_owned())??;
        tokio::spawn(conn);
        *sender = Some(s);
    }
    let s = sender.as_mut().ok_or("no connection")?;
    let exchange = async {
        s.ready().await.map_err(|e| describe(&e))?;
        let req = hyper::Request::get("/bench")
            .header("host", "localhost")
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let resp = s.send_request(req).await.map_err(|e| describe(&e))?;
        let status = resp.status();
        resp.into_body().collect().await.map_err(|e| describe(&e))?;
        if status.is_success() {
            Ok(())
        } else {
            Err(status.to_string())
        }
    };
    let result = tokio::time::timeout(REQUEST_TIMEOUT, exchange).await;
    result.unwrap_or_else(|_| {
        // The connection still waits for that answer: not reused.
        *sender = None;
        Err("timeout".to_owned())
    })
}

/// An error with its sources, `outer: inner: …` (hyper's own messages,
/// such as "connection error", say little without them).
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
