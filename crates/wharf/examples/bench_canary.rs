//! Canary benchmark (not a test): how fast does wharf pull back a bad
//! release, and what does it cost the clients?
//!
//! Starts `wharf server` on a fresh data dir, deploys the hello example as
//! release 1, puts a constant open-loop load on the proxy (RATE req/s over
//! keep-alive connections), then deploys release 2 as a canary at 10 % with
//! `HELLO_FAILURE_RATE=0.2` and the default analysis rules. Reports the time
//! from the canary step starting to the rollback decision (from the deploy's
//! own progress lines) and the share of all client requests that failed in
//! the incident window (canary start to decision + 1 s).
//!
//! Usage: `bench_canary <wharf-bin> <hello-bin> [rate] [weight] [failure-rate]`
//! (see `bench/canary/run.sh`).

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

/// One request: when it was sent (since the start), and whether it failed.
type Sample = (Duration, bool);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: bench_canary <wharf-bin> <hello-bin> [rate] [weight] [failure-rate]";
    let wharf = PathBuf::from(args.first().expect(usage));
    let hello = PathBuf::from(args.get(1).expect(usage));
    let rate: u32 = args.get(2).map_or(200, |r| r.parse().expect(usage));
    let weight: u32 = args.get(3).map_or(10, |w| w.parse().expect(usage));
    let failure: f64 = args.get(4).map_or(0.2, |f| f.parse().expect(usage));

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let app = tmp.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("wharf.toml"),
        format!(
            "name = \"bench\"\n\n[processes.web]\ncommand = \"{}\"\ninstances = 2\nhttp = {{ path = \"/\" }}\n\
             health = {{ path = \"/up\", interval = \"200ms\", timeout = \"1s\", threshold = 2 }}\n\n\
             [deploy]\nstrategy = \"canary\"\nsteps = [{{ weight = {weight}, pause = \"5m\" }}]\n",
            hello.display()
        ),
    )
    .unwrap();

    // Killed with its instances when the benchmark ends, however it ends.
    struct Server(std::process::Child);
    impl Drop for Server {
        fn drop(&mut self) {
            // SIGTERM: the server drains and stops its instances.
            let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = self.0.wait();
        }
    }
    let server = Command::new(&wharf)
        .args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--no-access-log",
        ])
        .env("WHARF_DATA", &data)
        .env("HOME", tmp.path())
        .stderr(std::fs::File::create(tmp.path().join("server.log")).unwrap())
        .spawn()
        .unwrap();
    let server = Server(server);
    let proxy = wait_for_server(&data);
    let cli = |args: &[&str]| {
        let mut c = Command::new(&wharf);
        c.args(args)
            .env("WHARF_DATA", &data)
            .env("HOME", tmp.path());
        c
    };
    let out = cli(&["deploy", app.to_str().unwrap()]).output().unwrap();
    assert!(
        out.status.success(),
        "first deploy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let start = Instant::now();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = runtime.spawn(open_loop(proxy, rate, start, samples.clone(), stop.clone()));

    std::thread::sleep(Duration::from_secs(5));
    let env = format!("HELLO_FAILURE_RATE={failure}");
    let mut deploy = cli(&["deploy", app.to_str().unwrap(), "--env", &env])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut canary_at, mut decided_at) = (None, None);
    for line in BufReader::new(deploy.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
    {
        let t = start.elapsed();
        if line.contains("- canary: step 1") {
            canary_at = Some(t);
        }
        if line.contains("- roll back: ") {
            decided_at = Some(t);
        }
        if line.contains("rolled back") || line.starts_with("error") {
            println!("deploy said: {line}");
        }
    }
    let rolled_back = !deploy.wait().unwrap().success();
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    runtime.block_on(load).unwrap();
    drop(server);

    let samples = samples.lock().unwrap();
    let (Some(canary_at), Some(decided_at)) = (canary_at, decided_at) else {
        println!(
            "no rollback happened (rolled_back={rolled_back}); see {}",
            tmp.path().display()
        );
        std::process::exit(1);
    };
    let window_end = decided_at + Duration::from_secs(1);
    let in_window: Vec<&Sample> = samples
        .iter()
        .filter(|(t, _)| *t >= canary_at && *t <= window_end)
        .collect();
    let failed = in_window.iter().filter(|(_, f)| *f).count();
    let total_failed = samples.iter().filter(|(_, f)| *f).count();
    let detect = decided_at - canary_at;
    println!();
    println!("| measure | value | target |");
    println!("| --- | ---: | ---: |");
    println!(
        "| load | {rate} req/s, canary weight {weight}%, canary failing {:.0}% | |",
        failure * 100.0
    );
    println!(
        "| canary start → rollback decision | {:.2} s | ≤ 5 s |",
        detect.as_secs_f64()
    );
    println!(
        "| failed / all requests in the incident window | {failed} / {} = {:.2} % | ≤ 1 % |",
        in_window.len(),
        100.0 * failed as f64 / in_window.len().max(1) as f64
    );
    println!(
        "| failed / all requests over the whole run | {total_failed} / {} = {:.2} % | |",
        samples.len(),
        100.0 * total_failed as f64 / samples.len().max(1) as f64
    );
}

fn wait_for_server(data: &Path) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(b) = std::fs::read(data.join("server.json"))
            && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&b)
        {
            return v["proxy"].as_str().unwrap().parse().unwrap();
        }
        assert!(Instant::now() < deadline, "wharf server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `rate` requests a second at fixed times, whatever the answers take
/// (an open loop: a slow server does not slow the load down), over a pool of
/// keep-alive connections.
async fn open_loop(
    addr: SocketAddr,
    rate: u32,
    start: Instant,
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
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
                let failed = request(addr, &mut sender).await.is_err();
                samples.lock().unwrap().push((sent, failed));
            }
        }));
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        tick.tick().await;
        let _ = tx.send(start.elapsed());
    }
    drop(tx);
    for w in workers {
        let _ = w.await;
    }
}

async fn request(
    addr: SocketAddr,
    sender: &mut Option<hyper::client::conn::http1::SendRequest<Empty<Bytes>>>,
) -> Result<(), String> {
    if sender.as_mut().is_none_or(|s| s.is_closed()) {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let (s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        *sender = Some(s);
    }
    let s = sender.as_mut().ok_or("no connection")?;
    s.ready().await.map_err(|e| e.to_string())?;
    let req = hyper::Request::get("/bench")
        .header("host", "localhost")
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(10), s.send_request(req))
        .await
        .map_err(|_| "timeout".to_owned())?
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    resp.into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(())
    } else {
        Err(status.to_string())
    }
}
