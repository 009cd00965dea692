//! Constant load through the proxy, on its own thread and runtime:
//! keep-alive connections (many requests each) and fresh connections (one
//! request each). Every request that does not get a complete 200 counts as
//! failed, with what went wrong.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;

#[derive(Debug, Default)]
pub struct Stats {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    pub failures: Mutex<Vec<String>>,
}

impl Stats {
    fn fail(&self, what: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut f = self.failures.lock().unwrap();
        if f.len() < 20 {
            f.push(what);
        }
    }
}

pub struct Load {
    stop: Arc<AtomicBool>,
    pub stats: Arc<Stats>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What a finished load saw.
#[derive(Debug)]
pub struct Report {
    pub ok: u64,
    pub failed: u64,
    pub failures: Vec<String>,
}

impl Load {
    pub fn start(addr: SocketAddr, keep_alive: usize, fresh: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Stats::default());
        let (s, st) = (stop.clone(), stats.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut tasks = Vec::new();
                for i in 0..keep_alive {
                    tasks.push(tokio::spawn(keep_alive_worker(
                        addr,
                        i,
                        s.clone(),
                        st.clone(),
                    )));
                }
                for i in 0..fresh {
                    tasks.push(tokio::spawn(fresh_worker(addr, i, s.clone(), st.clone())));
                }
                for t in tasks {
                    let _ = t.await;
                }
            });
        });
        Load {
            stop,
            stats,
            thread: Some(thread),
        }
    }

    pub fn ok(&self) -> u64 {
        self.stats.ok.load(Ordering::Relaxed)
    }

    pub fn finish(mut self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        Report {
            ok: self.stats.ok.load(Ordering::Relaxed),
            failed: self.stats.failed.load(Ordering::Relaxed),
            failures: self.stats.failures.lock().unwrap().clone(),
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).ok();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn request(sender: &mut Sender, path: &str, close: bool) -> Result<(), String> {
    let mut req = Request::get(path).header("host", "localhost");
    if close {
        req = req.header("connection", "close");
    }
    let req = req.body(Empty::new()).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(20), sender.send_request(req))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| format!("send: {e}"))?;
    let status = resp.status();
    let release = resp
        .headers()
        .get("x-hello-release")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    if status != 200 {
        return Err(format!(
            "status {status} (release {release}): {}",
            String::from_utf8_lossy(&body).trim()
        ));
    }
    Ok(())
}

async fn keep_alive_worker(addr: SocketAddr, i: usize, stop: Arc<AtomicBool>, stats: Arc<Stats>) {
    while !stop.load(Ordering::Relaxed) {
        let mut sender = match connect(addr).await {
            Ok(s) => s,
            Err(e) => {
                stats.fail(format!("keep-alive {i}: {e}"));
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // Many requests per connection, across deploys.
        for _ in 0..2000 {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            if sender.ready().await.is_err() {
                stats.fail(format!("keep-alive {i}: connection closed by the proxy"));
                break;
            }
            match request(&mut sender, "/load/keep-alive", false).await {
                Ok(()) => stats.ok.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    stats.fail(format!("keep-alive {i}: {e}"));
                    break;
                }
            };
        }
    }
}

async fn fresh_worker(addr: SocketAddr, i: usize, stop: Arc<AtomicBool>, stats: Arc<Stats>) {
    while !stop.load(Ordering::Relaxed) {
        let result = async {
            let mut sender = connect(addr).await?;
            request(&mut sender, "/load/fresh", true).await
        }
        .await;
        match result {
            Ok(()) => {
                stats.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => stats.fail(format!("fresh {i}: {e}")),
        }
    }
}
